"""Ground truth derived from real data: relative poses from trajectories, correspondences from
depth + pose + intrinsics, trajectory interpolation. Pure numpy; used by tests and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from vlm3_ros.geometry.backproject import backproject, project
from vlm3_ros.geometry.pose import invert, make_T

EXACT_S = 1e-6   # stamps this close are one instant (float seconds of nanosecond stamps)


@dataclass(frozen=True)
class Trajectory:
    """Timestamped poses T_world_sensor (N, 4, 4), sorted by time."""

    stamps: np.ndarray
    poses: np.ndarray

    def __post_init__(self) -> None:
        if len(self.stamps) != len(self.poses):
            raise ValueError("stamps and poses differ in length")
        if len(self.stamps) and np.any(np.diff(self.stamps) < 0):
            raise ValueError("trajectory stamps must be sorted")

    @staticmethod
    def from_tq(stamps: np.ndarray, t: np.ndarray, q_xyzw: np.ndarray) -> Trajectory:
        order = np.argsort(stamps, kind="stable")
        R = Rotation.from_quat(np.asarray(q_xyzw)[order]).as_matrix()
        poses = np.stack([make_T(r, tt) for r, tt in zip(R, np.asarray(t)[order], strict=True)])
        return Trajectory(np.asarray(stamps, dtype=np.float64)[order], poses)

    def interpolate(self, stamp: float, max_gap: float = 0.05) -> np.ndarray:
        """Pose at ``stamp``: linear in translation, slerp in rotation.

        Raises if ``stamp`` is outside the trajectory or its neighbours are more than
        ``max_gap`` seconds away (ground truth would be made up).
        """
        s = self.stamps
        if len(s) == 0:
            raise ValueError("the trajectory is empty")
        # A sample within a microsecond is the pose at that stamp: stamps that went through text
        # (trajectory files, seconds as floats) differ from nanosecond stamps by float rounding.
        j = int(np.argmin(np.abs(s - stamp)))
        if abs(s[j] - stamp) <= EXACT_S:
            return self.poses[j].copy()
        if stamp < s[0] or stamp > s[-1]:
            raise ValueError(f"stamp {stamp:.6f} is outside the trajectory [{s[0]:.6f}, {s[-1]:.6f}]")
        i = int(np.searchsorted(s, stamp))
        a, b = i - 1, i
        if max(stamp - s[a], s[b] - stamp) > max_gap:
            raise ValueError(f"no ground-truth pose within {max_gap}s of {stamp:.6f}")
        w = (stamp - s[a]) / (s[b] - s[a])
        slerp = Slerp([0.0, 1.0], Rotation.from_matrix(self.poses[[a, b], :3, :3]))
        R = slerp([w]).as_matrix()[0]
        t = (1 - w) * self.poses[a, :3, 3] + w * self.poses[b, :3, 3]
        return make_T(R, t)


def relative_pose_1_2(T_w_1: np.ndarray, T_w_2: np.ndarray) -> np.ndarray:
    """The VLM3 pose answer's transform: pose of camera 2 in camera 1, inv(T_w_1) @ T_w_2."""
    return invert(T_w_1) @ T_w_2


@dataclass(frozen=True)
class Correspondences:
    uv1: np.ndarray          # (N, 2) pixels in image 1 (rectified pinhole K1)
    uv2: np.ndarray          # (N, 2) their matches in image 2 (rectified pinhole K2)
    valid: np.ndarray        # (N,) bool: depth valid, in front, inside image 2, not occluded


def correspondences_from_depth(
    uv1: np.ndarray,
    depth1_z: np.ndarray,
    K1: np.ndarray,
    T_2_1: np.ndarray,
    K2: np.ndarray,
    size2: tuple[int, int],
    depth2_z: np.ndarray | None = None,
    occlusion_rel_tol: float = 0.05,
) -> Correspondences:
    """Back-project pixels of image 1 with their z-depth, move them into camera 2 with
    ``T_2_1`` (maps points from camera 1 to camera 2), and project with K2.

    With ``depth2_z`` (the depth image of frame 2, same pinhole K2) a match is marked occluded
    when frame 2 sees something more than ``occlusion_rel_tol`` closer at that pixel.
    """
    uv1 = np.asarray(uv1, dtype=np.float64).reshape(-1, 2)
    z1 = np.asarray(depth1_z, dtype=np.float64).reshape(-1)
    p1 = backproject(uv1, z1, K1, "z_depth")
    p2 = p1 @ T_2_1[:3, :3].T + T_2_1[:3, 3]
    uv2, z2 = project(p2, K2)
    w, h = size2
    valid = (z1 > 0) & np.isfinite(z1) & (z2 > 0)
    valid &= (uv2[:, 0] >= 0) & (uv2[:, 0] <= w - 1) & (uv2[:, 1] >= 0) & (uv2[:, 1] <= h - 1)
    if depth2_z is not None:
        ok = np.where(valid)[0]
        ui = np.rint(uv2[ok, 0]).astype(int)
        vi = np.rint(uv2[ok, 1]).astype(int)
        seen = depth2_z[vi, ui].astype(np.float64)
        occluded = (seen > 0) & (seen < z2[ok] * (1 - occlusion_rel_tol))
        unknown = ~(seen > 0)
        valid[ok[occluded | unknown]] = False
    return Correspondences(uv1=uv1, uv2=uv2, valid=valid)
