"""Ground-truth camera trajectories from files, for recordings whose bag carries no poses:
TUM RGB-D format (``timestamp tx ty tz qx qy qz qw`` per line, seconds, the camera's pose in the
world) and KITTI odometry format (a 3x4 row-major matrix per line, one line per image, in image
order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlm3_ros.geometry.trajectory import Trajectory


class TrajectoryFileError(ValueError):
    """The file is not in the stated format (the message names the line)."""


def _rows(path: Path) -> list[tuple[int, list[float]]]:
    out = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append((i, [float(v) for v in line.replace(",", " ").split()]))
        except ValueError as e:
            raise TrajectoryFileError(f"{path}:{i}: not numbers ({e})") from e
    return out


def read_tum(path: Path | str) -> Trajectory:
    rows = _rows(Path(path))
    bad = [i for i, r in rows if len(r) != 8]
    if bad or not rows:
        raise TrajectoryFileError(f"{path}:{bad[0] if bad else 1}: a TUM trajectory line is 'timestamp tx ty tz "
                                  "qx qy qz qw'")
    a = np.array([r for _, r in rows])
    return Trajectory.from_tq(a[:, 0], a[:, 1:4], a[:, 4:8])


def read_kitti(path: Path | str, stamps_ns: list[int]) -> Trajectory:
    """Line k is the camera pose of the k-th image (``stamps_ns`` in image order)."""
    rows = _rows(Path(path))
    bad = [i for i, r in rows if len(r) != 12]
    if bad or not rows:
        raise TrajectoryFileError(f"{path}:{bad[0] if bad else 1}: a KITTI pose line holds 12 numbers (3x4)")
    if len(rows) < len(stamps_ns):
        raise TrajectoryFileError(f"{path}: {len(rows)} poses for {len(stamps_ns)} images")
    poses = []
    for _, r in rows[:len(stamps_ns)]:
        T = np.eye(4)
        T[:3, :] = np.array(r).reshape(3, 4)
        poses.append(T)
    return Trajectory(np.asarray(stamps_ns, dtype=np.float64) * 1e-9, np.stack(poses))


def read_trajectory(path: Path | str, fmt: str = "", stamps_ns: list[int] | None = None) -> Trajectory:
    """``fmt``: tum | kitti ('' = by the number of columns)."""
    rows = _rows(Path(path))
    kind = fmt or ("kitti" if rows and len(rows[0][1]) == 12 else "tum")
    if kind == "kitti":
        return read_kitti(path, stamps_ns or [])
    return read_tum(path)
