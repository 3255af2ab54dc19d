"""The launch arguments of perception.launch.py and what node parameter each one sets. Shared by the
launch file and by ``vlm3-ros bringup`` (which runs the same node where ``ros2 launch`` is missing)."""

from __future__ import annotations

from dataclasses import dataclass

from vlm3_ros.params.table import NODE_NAME
from vlm3_ros.tasks.registry import TASK_NAMES, TASKS


@dataclass(frozen=True)
class LaunchArg:
    name: str
    default: str
    description: str
    parameter: str = ""      # node parameter it overrides ("" = not a parameter)


LAUNCH_ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("params_file", "", "YAML parameter file (default: the package's config/perception.yaml)"),
    LaunchArg("image_topic", "/camera/rgb/image_color", "sensor_msgs/Image topic", "image_topic"),
    LaunchArg("camera_info_topic", "/camera/rgb/camera_info", "sensor_msgs/CameraInfo topic", "camera_info_topic"),
    LaunchArg("backend", "transformers", "transformers | remote | ground_truth (TEST DOUBLE)", "backend"),
    *(LaunchArg(s.launch_arg, "", f"{s.checkpoint} checkpoint directory", s.model_param) for s in TASKS.values()),
    LaunchArg("device", "auto", "cpu | cuda | cuda:N | auto", "model.device"),
    LaunchArg("dtype", "auto", "auto | bfloat16 | float16 | float32", "model.dtype"),
    LaunchArg("enabled_tasks", ",".join(TASK_NAMES), "comma-separated tasks to serve", "enabled_tasks"),
    LaunchArg("namespace", "", "ROS namespace of the node"),
)

EXECUTABLE = "perception_node"
__all__ = ["EXECUTABLE", "LAUNCH_ARGS", "NODE_NAME", "LaunchArg", "parameter_overrides"]


def parameter_overrides(values: dict[str, str]) -> dict[str, object]:
    """Launch-argument strings -> typed node parameters (only the ones given a non-empty value)."""
    out: dict[str, object] = {}
    for arg in LAUNCH_ARGS:
        if not arg.parameter or arg.name not in values or values[arg.name] == "":
            continue
        v = values[arg.name]
        out[arg.parameter] = [t.strip() for t in v.split(",") if t.strip()] if arg.name == "enabled_tasks" else v
    return out
