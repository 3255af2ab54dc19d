"""Camera and TF input, as the node's subscriptions deliver it: CameraInfo and decoded images paired
into the frame cache, /tf and /tf_static into the transform tree, and the camera's extrinsic
(T_base_camera) of each frame from that tree or the vo.camera_extrinsic parameter.

Bad input is counted and logged (rate limited), never raised: no message may take the node down.
A stamp that jumps back (a bag restarted) restarts the timeline: the cache, the moving transforms
and whoever listens on ``on_time_jump`` (visual odometry).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vlm3_ros.geometry.camera import CameraInfoData
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.pose import pose_from_tq
from vlm3_ros.geometry.tf_tree import TfError, TfTree, edge_matrix
from vlm3_ros.readers.image_codec import ImageDecodeError
from vlm3_ros.serving.camera_sync import CameraSync
from vlm3_ros.serving.log import Log
from vlm3_ros.serving.plausibility import extrinsic_problem
from vlm3_ros.serving.settings import ServingSettings


@dataclass(frozen=True)
class TfEdge:
    """One transform of a /tf or /tf_static message, as received (validated by the intake)."""

    parent: str
    child: str
    stamp_ns: int
    translation: tuple[float, float, float]
    rotation_xyzw: tuple[float, float, float, float]


class CameraIntake:
    """The frame cache (``sync``) fed by the camera, the transform tree (``tf``) fed by /tf, and
    the extrinsic resolved from them. ``counters`` is the core's shared dict of dropped input."""

    def __init__(self, log: Log, counters: dict[str, float]) -> None:
        self.log = log
        self.counters = counters
        self.settings = ServingSettings()
        self.sync = CameraSync()
        self.tf = TfTree()
        self.on_time_jump: Callable[[], None] = lambda: None
        self.last_frame_wall = time.monotonic()     # the last image received (any)
        self.unusable_since: float | None = None    # images arrive but none entered the cache since
        self.T_base_cam_param = np.eye(4)           # the vo.camera_extrinsic parameter
        self.extrinsic_note = "no frame yet"
        self.extrinsic_last: np.ndarray | None = None   # the last extrinsic resolved from TF
        self._jumps_seen = 0

    def configure(self, settings: ServingSettings) -> None:
        """A new frame cache with the settings' tolerance, capacity and jump threshold."""
        self.settings = settings
        self.sync = CameraSync(tolerance_s=settings.stamp_tolerance_s, capacity=settings.frame_cache_size,
                               time_jump_s=settings.time_jump_s)
        self._jumps_seen = 0
        ext = settings.vo.extrinsic
        self.T_base_cam_param = pose_from_tq(np.array(ext[:3]), np.array(ext[3:]))

    @property
    def max_image_pixels(self) -> int:
        return self.settings.max_image_pixels

    # ================================================================== messages
    def safely(self, source: str, fn: Callable[[], object]) -> None:
        """Run a subscription's work; whatever a message does to it is counted and logged (rate
        limited) and the message dropped."""
        try:
            fn()
        except Exception as e:
            self.counters["callback_errors"] += 1
            self.log.warning(f"dropped a message on {source}: {type(e).__name__}: {e}", throttle_s=5.0,
                             key=f"callback-{source}")

    def on_camera_info(self, stamp_ns: int, info: CameraInfoData) -> None:
        if self.sync.add_camera_info(stamp_ns, info):  # images that waited for it are usable now
            self.unusable_since = None

    def on_image(self, stamp_ns: int, frame_id: str, decode: Callable[[], np.ndarray]) -> Frame | None:
        """Decode (in the caller's thread) and cache; bad images are counted and logged."""
        self.counters["frames_received"] += 1
        self.last_frame_wall = time.monotonic()
        try:
            rgb = decode()
        except (ImageDecodeError, ValueError) as e:
            self.sync.stats.decode_errors += 1
            self.sync.stats.last_error = str(e)
            if self.unusable_since is None:
                self.unusable_since = time.monotonic()
            self.log.warning(f"dropping image from {self.settings.image_topic}: {e}", throttle_s=5.0, key="decode")
            return None
        frame = self.sync.add_image(stamp_ns, frame_id, rgb)
        if self.sync.stats.time_jumps != self._jumps_seen:
            self._jumps_seen = self.sync.stats.time_jumps
            self.tf.clear_dynamic()
            self.on_time_jump()
            self.log.warning(f"{self.sync.stats.last_error}; visual odometry restarts at this frame")
        if frame is None and self.sync.stats.last_error:
            self.log.warning(f"image not usable: {self.sync.stats.last_error}", throttle_s=5.0, key="unusable")
        if frame is not None:
            self.unusable_since = None
        elif self.unusable_since is None:
            self.unusable_since = time.monotonic()
        return frame

    def on_tf(self, edges: list[TfEdge], static: bool) -> None:
        """Edges of /tf_static (``static``) or /tf into the transform tree; a bad edge (NaN, zero
        quaternion, absurd translation, a loop) is counted, logged and dropped."""
        for e in edges:
            try:
                T = edge_matrix(e.translation, e.rotation_xyzw)
                if static:
                    self.tf.set_static(e.parent, e.child, T)
                else:
                    self.tf.set_dynamic(e.parent, e.child, T, e.stamp_ns)
            except TfError as err:
                self.counters["tf_rejected"] += 1
                topic = "/tf_static" if static else "/tf"
                self.log.warning(f"dropped {topic} transform {e.parent!r} -> {e.child!r}: {err}", throttle_s=5.0,
                                 key=f"tf-{topic}")

    # ================================================================== what arrived
    def summary(self) -> str:
        """What the camera delivered so far, for a message that no frame is usable."""
        s = self.sync.stats
        return (f"images {s.images}, paired {s.paired_exact + s.paired_fallback}, without CameraInfo "
                f"{s.no_camera_info}, bad CameraInfo {s.bad_camera_info}, undecodable {s.decode_errors}")

    def extrinsic(self, frame: Frame) -> np.ndarray:
        """T_base_camera for ``frame``: the TF chain from the base frame to the image's frame at its
        stamp (through any tree, static or moving joints), else the vo.camera_extrinsic parameter;
        a chain that is implausible (serving.plausibility) is counted in ``extrinsic_rejected``,
        logged (rate limited) and not used."""
        s = self.settings
        if not s.vo.use_tf_static:
            self.extrinsic_note = "from the vo.camera_extrinsic parameter (vo.use_tf_static false)"
            return self.T_base_cam_param
        cam = s.camera_frame or frame.frame_id
        try:
            T = self.tf.lookup(s.vo.base_frame, cam, frame.stamp_ns)
        except TfError as e:
            note = (f"no TF chain {s.vo.base_frame} -> {cam}: {e}; using the vo.camera_extrinsic parameter")
            if note != self.extrinsic_note:
                self.log.warning(note, throttle_s=10.0, key="extrinsic")
            self.extrinsic_note = note
            return self.T_base_cam_param
        problem = extrinsic_problem(T)
        if problem:
            self.counters["extrinsic_rejected"] += 1
            note = (f"TF chain {s.vo.base_frame} -> {cam} rejected: {problem}; using the vo.camera_extrinsic "
                    "parameter")
            self.log.warning(note, throttle_s=10.0, key="extrinsic-rejected")
            self.extrinsic_note = note
            return self.T_base_cam_param
        note = "from TF: " + self.tf.describe(s.vo.base_frame, cam)
        if note != self.extrinsic_note:
            self.log.info(f"camera extrinsic {note}")
        self.extrinsic_note = note
        self.extrinsic_last = T
        return T
