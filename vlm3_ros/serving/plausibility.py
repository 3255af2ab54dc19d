"""What the node accepts as plausible at its edges, with the limits named: the camera extrinsic
(from the vo.camera_extrinsic parameter or the TF tree) and the text of a request. Each check
returns None when the input is plausible, else a reason that says what to fix. The CameraInfo
limits live with the camera model (geometry.camera); docs/reliability.md lists them all."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from vlm3_ros.geometry.pose import pose_from_tq

# A camera on a robot sits within a few hundred metres of its base frame; beyond that the
# extrinsic is a unit error (mm for m) or a wrong frame (a map or GPS origin), not a mount.
MAX_EXTRINSIC_TRANSLATION_M = 300.0
# R of the extrinsic: orthonormal (R Rᵀ = I) and det +1 within this tolerance.
EXTRINSIC_ROTATION_TOLERANCE = 1e-6
# Control characters allowed in request text; every other one (NUL, escape, bell, DEL, C1) is refused.
ALLOWED_CONTROL_CHARACTERS = frozenset("\t\n")


def extrinsic_problem(T: np.ndarray) -> str | None:
    """Why the 4x4 camera extrinsic ``T`` (T_base_camera) is implausible, or None."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return "it must be a finite 4x4 transform"
    t = T[:3, 3]
    if float(np.linalg.norm(t)) > MAX_EXTRINSIC_TRANSLATION_M:
        return (f"its translation ({', '.join(f'{v:g}' for v in t)}) m is {np.linalg.norm(t):g} m from the base, "
                f"beyond {MAX_EXTRINSIC_TRANSLATION_M:g} m: check the units (metres) and the frames")
    R = T[:3, :3]
    if not (np.allclose(R @ R.T, np.eye(3), atol=EXTRINSIC_ROTATION_TOLERANCE)
            and abs(float(np.linalg.det(R)) - 1.0) <= EXTRINSIC_ROTATION_TOLERANCE):
        return f"its rotation is not a proper rotation (orthonormal, det +1; det is {np.linalg.det(R):g})"
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
        return f"its last row must be 0 0 0 1, got {T[3].tolist()}"
    return None


def extrinsic_tq_problem(translation: Sequence[float], quaternion_xyzw: Sequence[float]) -> str | None:
    """:func:`extrinsic_problem` of an extrinsic given as translation + quaternion (a parameter)."""
    T = pose_from_tq(np.asarray(translation, dtype=np.float64), np.asarray(quaternion_xyzw, dtype=np.float64))
    return extrinsic_problem(T)


def text_problem(name: str, text: str) -> str | None:
    """Why request text ``name`` cannot be used as sent (a control character other than tab or
    newline), or None. The position and code point say what to remove."""
    for i, ch in enumerate(text):
        if ch not in ALLOWED_CONTROL_CHARACTERS and unicodedata.category(ch) == "Cc":
            return (f"{name} holds the control character U+{ord(ch):04X} at position {i}; remove it (only tab and "
                    "newline are allowed)")
    return None
