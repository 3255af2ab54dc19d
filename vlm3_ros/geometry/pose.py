"""Pose math: the VLM3 yaw/pitch/roll convention, SE(3), quaternions, optical <-> body frames.

VLM3 pose answers (contract): camera 1 is the reference; yaw, pitch, roll are applied
intrinsically in that order about camera-1 optical axes (x right, y down, z forward):
yaw > 0 turns right = +rotation about +y, pitch > 0 looks up = +rotation about +x,
roll > 0 banks right = +rotation about +z. R = Ry(yaw) Rx(pitch) Rz(roll) has camera-2 axes as
columns in camera-1 coordinates (d_cam1 = R d_cam2), and the translation is camera 2's position
in camera 1's frame. Together they are T_1_2 = inv(T_w_1) @ T_w_2, the pose of camera 2 in
camera 1. (Label files that give ``X2 = R X1 + t`` hold the inverse, T_2_1.)

Rotations go through scipy.spatial.transform.Rotation.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

# REP 103: body x forward, y left, z up; optical x right, y down, z forward.
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def ypr_to_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """The contract's intrinsic yaw -> pitch -> roll (about y, x, z) to a rotation matrix."""
    return Rotation.from_euler("YXZ", [yaw_deg, pitch_deg, roll_deg], degrees=True).as_matrix()


def matrix_to_ypr(R: np.ndarray) -> tuple[float, float, float]:
    """Inverse of ypr_to_matrix (degrees; pitch in [-90, 90])."""
    yaw, pitch, roll = Rotation.from_matrix(np.asarray(R)).as_euler("YXZ", degrees=True)
    return float(yaw), float(pitch), float(roll)


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of a rotation (degrees), numerically safe near 0 and 180."""
    return float(np.degrees(Rotation.from_matrix(np.asarray(R)).magnitude()))


def rotation_error_deg(R_gt: np.ndarray, R_pred: np.ndarray) -> float:
    """Angle of R_gt^T R_pred."""
    return rotation_angle_deg(np.asarray(R_gt).T @ np.asarray(R_pred))


def translation_angle_deg(t_gt: np.ndarray, t_pred: np.ndarray, fold_sign: bool = True) -> float:
    """Angle between two translation directions; a zero vector counts as 90 degrees.

    ``fold_sign``: arccos(|u_gt . u_pred|), the pose-AUC convention (scale/sign ambiguity).
    """
    a = np.asarray(t_gt, dtype=np.float64)
    b = np.asarray(t_pred, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 90.0
    c = float(np.dot(a, b) / (na * nb))
    if fold_sign:
        c = abs(c)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def make_T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert(T: np.ndarray) -> np.ndarray:
    R, t = T[:3, :3], T[:3, 3]
    return make_T(R.T, -R.T @ t)


def compose(*Ts: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    for T in Ts:
        out = out @ T
    return out


def relative_pose(T_w_a: np.ndarray, T_w_b: np.ndarray) -> np.ndarray:
    """Pose of frame b in frame a, T_a_b = inv(T_w_a) @ T_w_b (maps points in b to a)."""
    return invert(T_w_a) @ T_w_b


def quat_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    return Rotation.from_quat(np.asarray(q, dtype=np.float64)).as_matrix()


def matrix_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    q = Rotation.from_matrix(np.asarray(R)).as_quat()
    return q if q[3] >= 0 else -q   # canonical sign: w >= 0


def pose_from_tq(t: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    return make_T(quat_xyzw_to_matrix(q_xyzw), t)


def optical_to_body(T_optical: np.ndarray) -> np.ndarray:
    """A relative motion expressed in the optical frame -> the same motion in the body frame
    (x forward, y left, z up) of a camera mounted with R_BODY_OPTICAL."""
    A = make_T(R_BODY_OPTICAL, np.zeros(3))
    return A @ T_optical @ invert(A)


def change_frame(T_motion_cam: np.ndarray, T_base_cam: np.ndarray) -> np.ndarray:
    """A camera motion T_c1_c2 -> the base motion T_b1_b2 for a rigid extrinsic T_base_cam."""
    return T_base_cam @ T_motion_cam @ invert(T_base_cam)
