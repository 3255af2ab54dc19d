"""Keyframe visual odometry from relative-pose answers, chained into odom -> base (REP 105).

Each update brings T_k_c, the pose of the current camera in the keyframe's camera (optical)
frame, as the pose task answers it. With the rigid extrinsic T_base_cam the base moves by
T_bk_bc = T_base_cam T_k_c T_base_cam^-1, so T_odom_base(c) = T_odom_base(k) T_bk_bc.

Why baselines, not frame counts: the pose answer writes distances to 0.01 m and directions to two
decimals, so a short step is mostly rounding (a 2.4 cm step answered "0.02 meters" loses 17% of
the path). An answer is integrated only when the camera moved at least ``min_baseline_m`` (or
turned ``min_rotation_deg``) since the keyframe; a new keyframe starts after ``min_translation_m``,
``min_rotation_deg`` or ``max_age_s``, whatever the frame rate.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from vlm3_ros.geometry.pose import change_frame, invert, rotation_angle_deg


@dataclass(frozen=True)
class KeyframePolicy:
    min_translation_m: float = 0.3   # new keyframe after this much translation since the keyframe
    min_rotation_deg: float = 15.0   # ... or this much rotation
    max_age_s: float = 5.0           # ... or this long
    min_baseline_m: float = 0.1      # integrate an answer only from this baseline (or min_rotation_deg) on


@dataclass
class OdometryState:
    stamp_ns: int
    T_odom_base: np.ndarray
    keyframe_stamp_ns: int
    updates: int
    integrated: bool = True          # False: the baseline was too short to use; odom did not move


@dataclass
class KeyframeOdometry:
    T_base_cam: np.ndarray
    policy: KeyframePolicy = field(default_factory=KeyframePolicy)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.keyframe_stamp_ns: int | None = None
            self.T_odom_key = np.eye(4)
            self.T_odom_base = np.eye(4)
            self.stamp_ns: int | None = None
            self.updates = 0
            self.failures = 0
            self.short = 0

    def start(self, stamp_ns: int) -> OdometryState:
        """The first frame becomes the keyframe at the odom origin."""
        with self._lock:
            self.keyframe_stamp_ns = stamp_ns
            self.stamp_ns = stamp_ns
            return OdometryState(stamp_ns, self.T_odom_base.copy(), stamp_ns, self.updates)

    def update(self, stamp_ns: int, T_k_c: np.ndarray | None, T_base_cam_key: np.ndarray | None = None,
               T_base_cam_cur: np.ndarray | None = None) -> OdometryState | None:
        """Integrate one relative-pose answer; None (counted) when the answer failed. With a
        moving camera joint give the extrinsic at the keyframe and at the current frame (else the
        rigid ``T_base_cam``): T_bk_bc = T_base_cam_key T_k_c T_base_cam_cur^-1."""
        with self._lock:
            if self.keyframe_stamp_ns is None:
                raise RuntimeError("call start() with the first frame before update()")
            if T_k_c is None:
                self.failures += 1
                return None
            moved = float(np.linalg.norm(T_k_c[:3, 3]))
            turned = rotation_angle_deg(T_k_c[:3, :3])
            if moved < self.policy.min_baseline_m and turned < self.policy.min_rotation_deg:
                self.short += 1
                return OdometryState(stamp_ns, self.T_odom_base.copy(), self.keyframe_stamp_ns, self.updates, False)
            if T_base_cam_key is None and T_base_cam_cur is None:
                T_bk_bc = change_frame(T_k_c, self.T_base_cam)
            else:
                E_k = self.T_base_cam if T_base_cam_key is None else T_base_cam_key
                E_c = self.T_base_cam if T_base_cam_cur is None else T_base_cam_cur
                T_bk_bc = E_k @ T_k_c @ invert(E_c)
            self.T_odom_base = self.T_odom_key @ T_bk_bc
            self.stamp_ns = stamp_ns
            self.updates += 1
            age_s = (stamp_ns - self.keyframe_stamp_ns) * 1e-9
            if (moved >= self.policy.min_translation_m or turned >= self.policy.min_rotation_deg
                    or age_s >= self.policy.max_age_s):
                self.keyframe_stamp_ns = stamp_ns
                self.T_odom_key = self.T_odom_base.copy()
            return OdometryState(stamp_ns, self.T_odom_base.copy(), self.keyframe_stamp_ns, self.updates)
