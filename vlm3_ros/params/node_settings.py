"""The node's settings as one typed, frozen record: what the serving core, the tasks' pipeline, each
task's backend and the ROS shell take from the parameters. Built once from the validated
configuration by vlm3_ros.params.mapping.node_settings; the node, ``vlm3-ros eval``, the tools and
the benchmarks read its attributes, never the parameters by name."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from vlm3_ros.serving.settings import ServingSettings
from vlm3_ros.tasks.pipeline import PipelineSettings


@dataclass(frozen=True)
class CameraSubscription:
    """How the node subscribes to the camera (the topics themselves are the serving core's)."""

    use_compressed: bool = False            # <image_topic>/compressed (sensor_msgs/CompressedImage)
    reliable: bool = False                  # RELIABLE, else BEST_EFFORT (sensor-data QoS)
    depth: int = 5                          # queue depth


@dataclass(frozen=True)
class NodeSettings:
    """Every setting of the node, each reached one way:

    - ``pipeline``: what the model sees and how its answers are read (unification, prompts, token
      limits, the point limit);
    - ``serving``: the serving core's camera intake, request limits, sparse depth and odometry
      (its topics, frames and timer rates too);
    - ``backends``: each enabled task's backend configuration (equal ones share one backend);
    - ``camera``: how the ROS shell subscribes to the camera;
    - ``parameters``: the validated values by name, only to record them (reports, logs);
    - ``notes``: what the configuration switched off by itself, to log at configure.
    """

    backend: str
    backends: Mapping[str, Hashable]
    pipeline: PipelineSettings
    serving: ServingSettings
    camera: CameraSubscription
    parameters: Mapping[str, Any]
    notes: tuple[str, ...] = ()

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.serving.tasks
