"""Work the node does on its own, on timers: the sparse depth cloud of the latest frame and keyframe
visual odometry. Each tick queues at most one job on the inference worker (a tick that finds its
previous job still running is skipped and counted), and hands the result to a publish callback
the ROS layer supplies."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.odometry import KeyframeOdometry
from vlm3_ros.serving.camera_intake import CameraIntake
from vlm3_ros.serving.jobs import JobRunner, Work
from vlm3_ros.serving.log import Log
from vlm3_ros.serving.settings import OdometrySettings, SparseDepthSettings
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.pose_task import PoseResult


class SparseDepthProducer:
    """Depth at a fixed pixel pattern of each new frame, ``publish(result, frame)``."""

    def __init__(self, settings: SparseDepthSettings, camera: CameraIntake, jobs: JobRunner,
                 counters: dict[str, float]) -> None:
        self.settings = settings
        self.camera = camera
        self.jobs = jobs
        self.counters = counters
        self._busy = threading.Event()
        self._last_stamp = -1

    def tick(self, publish: Callable[[DepthResult, Frame], None]) -> None:
        if not self.jobs.active:
            return
        frame = self.camera.sync.latest()
        if frame is None or frame.stamp_ns == self._last_stamp:
            return
        if self._busy.is_set():
            self.counters["sparse_skipped"] += 1
            return
        px = self.settings.pixels_for(frame.camera.width, frame.camera.height)
        depth_type = self.settings.depth_type
        self._last_stamp = frame.stamp_ns

        def on_result(r: DepthResult) -> None:
            if not self.jobs.active:
                return  # deactivated while the job ran: publish nothing
            publish(r, frame)
            self.counters["sparse_published"] += 1

        work = Work("sparse_depth", lambda pipeline: pipeline.depth(frame, px, depth_type))  # type: ignore[arg-type]
        self.jobs.in_background(work, 1.0 / self.settings.rate_hz + 1.0, self._busy, "sparse_skipped", on_result)


class OdometryProducer:
    """Keyframe VO: each new frame's pose against the keyframe, chained into odom -> base with the
    base -> camera extrinsic of each frame, and handed to ``publish(T_odom_base, stamp_ns)``."""

    def __init__(self, settings: OdometrySettings, camera: CameraIntake, jobs: JobRunner,
                 counters: dict[str, float], log: Log) -> None:
        self.settings = settings
        self.camera = camera
        self.jobs = jobs
        self.counters = counters
        self.log = log
        self.odom = KeyframeOdometry(camera.T_base_cam_param, settings.policy)
        self.keyframe: Frame | None = None
        self._busy = threading.Event()
        self._last_stamp = -1

    def reset(self) -> None:
        self.odom.reset()
        self.keyframe = None
        self._last_stamp = -1

    def tick(self, publish: Callable[[np.ndarray, int], None]) -> None:
        if not self.jobs.active:
            return
        frame = self.camera.sync.latest()
        if frame is None or frame.stamp_ns <= self._last_stamp:
            return
        if self.keyframe is None:
            self.keyframe = frame
            self._last_stamp = frame.stamp_ns
            st = self.odom.start(frame.stamp_ns)
            publish(st.T_odom_base, frame.stamp_ns)
            return
        if self._busy.is_set():
            self.counters["vo_skipped"] += 1
            return
        key = self.keyframe
        self._last_stamp = frame.stamp_ns

        def integrate(r: PoseResult) -> None:
            if not self.jobs.active:
                return
            T = r.T_a_b
            if T is not None and r.distance_m is None:
                T = None  # a unit direction has no scale: do not integrate it
            # the extrinsic at both stamps: a camera on a moving joint changes it between them
            st = self.odom.update(frame.stamp_ns, T, self.camera.extrinsic(key), self.camera.extrinsic(frame))
            if st is None:
                self.counters["vo_failures"] += 1
                self.log.warning(f"VO answer not usable: {r.reasons}", throttle_s=5.0, key="vo-unusable")
                return
            if not st.integrated:  # too short a baseline to measure: wait for the camera to move on
                self.counters["vo_short_baseline"] += 1
                return
            self.counters["vo_updates"] += 1
            if st.keyframe_stamp_ns == frame.stamp_ns:
                self.keyframe = frame
            publish(st.T_odom_base, frame.stamp_ns)

        work = Work("vo", lambda pipeline: pipeline.pose(key, frame, True))
        self.jobs.in_background(work, 2.0 / self.settings.rate_hz + 1.0, self._busy, "vo_skipped", integrate)
