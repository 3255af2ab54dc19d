"""The perception node's logic without ROS, as one handle composed of its parts:

- ``camera`` (serving.camera_intake): camera and TF input, the frame cache, the extrinsic;
- ``models`` (serving.model_host): the models, the pipeline and the inference worker;
- ``jobs`` (serving.jobs): work handed to the worker, waited for or in the background;
- ``services`` (serving.service_requests): the four services' requests and their statuses;
- ``sparse`` and ``vo`` (serving.producers): the sparse-depth and odometry producers, while active;
- ``health()`` (serving.health): the diagnostics of them all.

This module owns the lifecycle (configure, activate, deactivate, cleanup, live settings) that
starts and stops the parts together. The ROS node (vlm3_ros.ros.perception_node) converts messages
into calls on the parts and replies back into messages; everything it would otherwise decide is
decided here, so it is tested in-process in milliseconds. Thread model: camera calls, service calls
and producer ticks arrive on different executor threads; model work runs only on the worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vlm3_ros.contract.question import Backend
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.serving.camera_intake import CameraIntake, TfEdge
from vlm3_ros.serving.frame_selection import FrameMode, FrameRef
from vlm3_ros.serving.goals import GoalRequests
from vlm3_ros.serving.health import Health, HealthLevel, camera_health, extrinsic_health, models_health, requests_health
from vlm3_ros.serving.jobs import JobRunner
from vlm3_ros.serving.log import Log
from vlm3_ros.serving.model_host import ModelHost
from vlm3_ros.serving.producers import OdometryProducer, SparseDepthProducer
from vlm3_ros.serving.service_requests import DEPTH_TYPE_CODES, Reply
from vlm3_ros.serving.settings import ServingSettings
from vlm3_ros.tasks.pipeline import PipelineSettings

# The names the node, the tools and the tests take from the serving core.
__all__ = ["DEPTH_TYPE_CODES", "FrameMode", "FrameRef", "Health", "HealthLevel", "PerceptionCore", "Reply",
           "TfEdge"]


class PerceptionCore:
    """The serving core: its parts, started and stopped together. ``counters`` counts dropped
    input and the producers' ticks (reported with the camera's health)."""

    def __init__(self, log: Log | None = None) -> None:
        self.log = log or Log()
        self.settings: ServingSettings | None = None
        self.counters: dict[str, float] = {
            "frames_received": 0, "sparse_published": 0, "sparse_skipped": 0, "vo_updates": 0, "vo_skipped": 0,
            "vo_failures": 0, "vo_short_baseline": 0, "tf_rejected": 0, "extrinsic_rejected": 0,
            "callback_errors": 0}
        self.camera = CameraIntake(self.log, self.counters)
        self.models = ModelHost(self.log)
        self.jobs = JobRunner(self.models, self.log, self.counters)
        self.services = GoalRequests(self.camera, self.jobs, self.log, self._keyframe)
        self.sparse: SparseDepthProducer | None = None
        self.vo: OdometryProducer | None = None
        self.camera.on_time_jump = self._restart_odometry

    @property
    def active(self) -> bool:
        """Whether the node takes work (requests, producer ticks)."""
        return self.models.active

    @active.setter
    def active(self, value: bool) -> None:
        self.models.active = value

    # ================================================================== lifecycle
    def configure(self, settings: ServingSettings, pipeline_settings: PipelineSettings,
                  open_backends: Callable[[], dict[str, Backend]]) -> bool:
        """Take the settings and load the models; False (with the reason logged) on failure."""
        self._use(settings)
        self.camera.configure(settings)
        self.models.pipeline_settings, self.models.open_backends = pipeline_settings, open_backends
        return self.models.load()

    def fail_configure(self, reason: str) -> None:
        """Record why configure failed (reported as ERROR in diagnostics) and log it."""
        self.models.fail(reason)

    def activate(self) -> bool:
        """Start serving: the models (loaded again after a deactivate) and the producers."""
        s = self.settings
        assert s is not None
        if self.models.pipeline is None and not self.models.load():
            return False
        sparse_on = s.sparse.rate_hz > 0
        self.sparse = SparseDepthProducer(s.sparse, self.camera, self.jobs, self.counters) if sparse_on else None
        self.vo = OdometryProducer(s.vo, self.camera, self.jobs, self.counters, self.log) if s.vo.enabled else None
        self.camera.last_frame_wall = time.monotonic()
        self.active = True
        return True

    def deactivate(self) -> None:
        """Stop serving: no new work, producers stopped, models freed (GPU memory)."""
        self.active = False
        self.sparse = None
        self.vo = None
        self.release_models()

    def cleanup(self) -> None:
        self.deactivate()
        self.camera.sync.clear()
        self.settings = None

    def apply_live(self, settings: ServingSettings, pipeline_settings: PipelineSettings) -> None:
        """Parameters a running node takes at once (request limits, timeouts, covariances): the
        next request reads them."""
        self._use(settings)
        self.models.use_pipeline_settings(pipeline_settings)

    def release_models(self) -> None:
        """Stop the worker, then free the models (serving.model_host)."""
        self.models.release()

    def _use(self, settings: ServingSettings) -> None:
        """The parts read their settings from here on."""
        self.settings = settings
        self.camera.settings = self.models.settings = self.jobs.settings = self.services.settings = settings

    # ================================================================== odometry
    def reset_odometry(self) -> tuple[bool, str]:
        if not self.active:
            return False, "the node is not active: nothing to reset (activate it first)"
        if self.vo is None:
            return False, "visual odometry is not running (vo.enabled false or node inactive)"
        self.vo.reset()
        return True, "odometry reset: the next frame is the new origin"

    def _keyframe(self) -> Frame | None:
        vo = self.vo
        return vo.keyframe if vo is not None else None

    def _restart_odometry(self) -> None:
        vo = self.vo
        if vo is not None:
            vo.reset()

    # ================================================================== health
    def health(self) -> list[Health]:
        """The node's diagnostics: camera first, then models, requests and (with VO) the extrinsic."""
        out = [camera_health(self.camera, self.active), models_health(self.models),
               requests_health(self.services.stats, self.models)]
        if self.settings is not None and self.settings.vo.enabled and self.active:
            out.append(extrinsic_health(self.camera))
        return out
