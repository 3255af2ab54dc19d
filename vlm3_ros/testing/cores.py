"""A serving core on the ground-truth TEST DOUBLE, fed a recorded camera stream, for in-process
tests of everything the node decides (no ROS, no DDS)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from vlm3_ros.geometry.camera import CameraInfoData
from vlm3_ros.inference.ground_truth.backend import GroundTruthBackend, GroundTruthConfig
from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.serving.core import PerceptionCore
from vlm3_ros.serving.settings import OdometrySettings, ServingSettings, SparseDepthSettings
from vlm3_ros.tasks.pipeline import PipelineSettings
from vlm3_ros.tasks.task_registry import TASK_NAMES
from vlm3_ros.testing.scripted_backend import ScriptedBackend

CameraStream = list[tuple[int, str, np.ndarray, CameraInfoData]]


def feed(core: PerceptionCore, stream: CameraStream) -> None:
    """Each CameraInfo, then its image, as the camera callbacks would."""
    for stamp, frame_id, rgb, info in stream:
        core.camera.on_camera_info(stamp, info)
        core.camera.on_image(stamp, frame_id, lambda rgb=rgb: rgb)


def ground_truth_core(stream: CameraStream, bag: str = str(BAG_PATHS["mcap"]), vo: bool | OdometrySettings = False,
                      sparse_hz: float = 0.0, **settings: Any) -> PerceptionCore:
    """Configured, active, and fed ``stream``; ``vo`` is on/off or its settings, ``settings``
    override ServingSettings fields."""
    gt = GroundTruthBackend.from_config(GroundTruthConfig(bag=bag))
    s = replace(ServingSettings(tasks=TASK_NAMES, backend="ground_truth", image_topic="/camera/rgb/image_color",
                                camera_info_topic="/camera/rgb/camera_info",
                                sparse=SparseDepthSettings(rate_hz=sparse_hz),
                                vo=vo if isinstance(vo, OdometrySettings) else OdometrySettings(enabled=vo)),
                **settings)
    core = PerceptionCore()
    if not core.configure(s, PipelineSettings(), lambda: {t: gt for t in s.tasks}):
        raise RuntimeError("the ground-truth core did not configure")
    if not core.activate():
        raise RuntimeError("the ground-truth core did not activate")
    feed(core, stream)
    return core


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``cond`` until it holds or ``timeout`` passes (threads of the core under test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def scripted_core(answer: str, delay_s: float, stream: CameraStream) -> tuple[PerceptionCore, ScriptedBackend]:
    """An active core whose depth and object tasks answer ``answer`` after ``delay_s`` per
    question (a slow model, for deadlines and cancelling), fed ``stream``; the caller cleans up."""
    core = PerceptionCore()
    slow = ScriptedBackend(lambda q, i: answer, delay_s=delay_s)
    settings = ServingSettings(tasks=("depth", "object"), request_timeout_s=30.0, vo=OdometrySettings(enabled=False))
    assert core.configure(settings, PipelineSettings(), lambda: {"depth": slow, "object": slow}) and core.activate()
    feed(core, stream)
    return core, slow
