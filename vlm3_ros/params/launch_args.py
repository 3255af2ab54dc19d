"""The launch arguments of perception.launch.py and what node parameter each one sets. Shared by the
launch file and by ``vlm3-ros bringup`` (which runs the same node where ``ros2 launch`` is missing)."""

from __future__ import annotations

from dataclasses import dataclass

from vlm3_ros.inference.backend_registry import BACKENDS
from vlm3_ros.params.config import typed_value
from vlm3_ros.params.table import NODE_NAME, choices
from vlm3_ros.tasks.task_registry import TASK_NAMES, TASKS


@dataclass(frozen=True)
class LaunchArg:
    name: str
    default: str
    description: str
    parameter: str = ""      # node parameter it overrides ("" = not a parameter)


# A launch argument left empty keeps the params file's value: the file is the robot's
# configuration, an argument given on the command line overrides it (ROS 2's order: later wins).
LAUNCH_ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("params_file", "", "YAML parameter file (default: the package's config/perception.yaml)"),
    LaunchArg("namespace", "", "ROS namespace of the node"),
    LaunchArg("image_topic", "", "sensor_msgs/Image topic", "image_topic"),
    LaunchArg("camera_info_topic", "", "sensor_msgs/CameraInfo topic", "camera_info_topic"),
    LaunchArg("use_compressed", "", "true: subscribe to <image_topic>/compressed", "use_compressed"),
    LaunchArg("camera_frame", "", "camera optical frame for the TF extrinsic (default: the image's frame_id)",
              "camera_frame"),
    LaunchArg("backend", "", " | ".join(f"{k} (TEST DOUBLE)" if BACKENDS[k].test_double else k
                                        for k in choices("backend")), "backend"),
    LaunchArg("enabled_tasks", "", f"comma-separated tasks to serve ({','.join(TASK_NAMES)})", "enabled_tasks"),
    *(LaunchArg(s.launch_arg, "", f"{s.checkpoint} checkpoint directory", s.model_param) for s in TASKS.values()),
    LaunchArg("device", "", "cpu | cuda | cuda:N | auto", "model.device"),
    LaunchArg("dtype", "", " | ".join(choices("model.dtype")), "model.dtype"),
    LaunchArg("remote_url", "", "OpenAI-compatible server of every task (backend remote)", "remote.url"),
    *(LaunchArg(f"{s.name}_url", "", f"server of the {s.name} task (backend remote)", f"remote.{s.name}_url")
      for s in TASKS.values()),
    LaunchArg("vo_enabled", "", "true | false: visual odometry (needs the pose task)", "vo.enabled"),
    LaunchArg("sparse_depth_rate", "", "Hz of ~/sparse_depth, 0 = off (needs the depth task)",
              "sparse_depth.rate_hz"),
)

EXECUTABLE = "perception_node"
__all__ = ["EXECUTABLE", "LAUNCH_ARGS", "NODE_NAME", "LaunchArg", "parameter_overrides"]


def parameter_overrides(values: dict[str, str]) -> dict[str, object]:
    """Launch-argument strings -> typed node parameters, only for the arguments given a value."""
    return {arg.parameter: typed_value(arg.parameter, values[arg.name]) for arg in LAUNCH_ARGS
            if arg.parameter and values.get(arg.name, "") != ""}
