"""Depth at pixels -> 3D points in the camera optical frame, and PointCloud2 byte layouts.

Optical frame (REP 103): x right, y down, z forward, metres. Depth is explicit: ``z_depth``
(distance along the optical axis, what depth cameras publish, REP 118) or ``range`` (Euclidean
distance from the optical centre along the pixel's ray). Pixels are RECTIFIED pixels of the
pinhole ``K`` (undistort raw pixels first with CameraModel.undistort_pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

DepthType = Literal["z_depth", "range"]
DEPTH_TYPES: tuple[DepthType, ...] = ("z_depth", "range")

# sensor_msgs/PointField datatypes
PF_INT8, PF_UINT8, PF_INT16, PF_UINT16, PF_INT32, PF_UINT32, PF_FLOAT32, PF_FLOAT64 = range(1, 9)
_NUMPY_TO_PF = {
    np.dtype(np.int8): PF_INT8, np.dtype(np.uint8): PF_UINT8, np.dtype(np.int16): PF_INT16,
    np.dtype(np.uint16): PF_UINT16, np.dtype(np.int32): PF_INT32, np.dtype(np.uint32): PF_UINT32,
    np.dtype(np.float32): PF_FLOAT32, np.dtype(np.float64): PF_FLOAT64,
}


def rays_z1(uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Rays (N, 3) with z = 1 through rectified pixels ``uv`` (N, 2)."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    x = (uv[:, 0] - K[0, 2]) / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    return np.column_stack([x, y, np.ones(len(uv))])


def rays_unit(uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    r = rays_z1(uv, K)
    return r / np.linalg.norm(r, axis=1, keepdims=True)


def convert_depth(depth: np.ndarray, uv: np.ndarray, K: np.ndarray, src: DepthType, dst: DepthType) -> np.ndarray:
    """Convert per-pixel depth between z-depth and range along the ray."""
    depth = np.asarray(depth, dtype=np.float64).reshape(-1)
    if src == dst:
        return depth.copy()
    norm = np.linalg.norm(rays_z1(uv, K), axis=1)
    return depth / norm if src == "range" else depth * norm


def backproject(uv: np.ndarray, depth: np.ndarray, K: np.ndarray, depth_type: DepthType) -> np.ndarray:
    """Points (N, 3) in the optical frame; NaN depth gives a NaN point."""
    if depth_type not in DEPTH_TYPES:
        raise ValueError(f"depth_type must be one of {DEPTH_TYPES}, got {depth_type!r}")
    depth = np.asarray(depth, dtype=np.float64).reshape(-1)
    rays = rays_z1(uv, K) if depth_type == "z_depth" else rays_unit(uv, K)
    return rays * depth[:, None]


def project(points: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) in the optical frame -> (pixels (N, 2), z (N,)); pixels NaN where z <= 0."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    z = p[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * p[:, 0] / z + K[0, 2]
        v = K[1, 1] * p[:, 1] / z + K[1, 2]
    uv = np.column_stack([u, v])
    uv[~(z > 0)] = np.nan
    return uv, z


@dataclass(frozen=True)
class PointCloudLayout:
    """A PointCloud2's data and layout fields, ready to copy into the message."""

    height: int
    width: int
    fields: tuple[tuple[str, int, int, int], ...]   # (name, offset, datatype, count)
    point_step: int
    row_step: int
    data: bytes
    is_dense: bool
    is_bigendian: bool = False


def pack_points(
    points: np.ndarray,
    extra: dict[str, np.ndarray] | None = None,
    organized_shape: tuple[int, int] | None = None,
    point_step: int | None = None,
) -> PointCloudLayout:
    """Pack xyz (float32 at offsets 0/4/8) plus optional extra per-point fields.

    ``organized_shape`` (height, width) makes an organized cloud (rows of the image); otherwise
    height = 1. ``point_step`` may add padding (16 gives depth_image_proc's layout).
    ``is_dense`` is True only when no point has a NaN coordinate.
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    n = len(pts)
    names: list[tuple[str, np.dtype]] = [("x", np.dtype(np.float32)), ("y", np.dtype(np.float32)),
                                         ("z", np.dtype(np.float32))]
    extra = extra or {}
    for name, values in extra.items():
        arr = np.asarray(values)
        if arr.shape != (n,):
            raise ValueError(f"extra field {name!r} has shape {arr.shape}, expected ({n},)")
        if arr.dtype not in _NUMPY_TO_PF:
            raise ValueError(f"extra field {name!r} has unsupported dtype {arr.dtype}")
        names.append((name, arr.dtype))
    offsets, off = [], 0
    for _, dt in names:
        offsets.append(off)
        off += dt.itemsize
    step = point_step if point_step is not None else off
    if step < off:
        raise ValueError(f"point_step {step} is smaller than the fields ({off} bytes)")
    dtype = np.dtype({"names": [nm for nm, _ in names], "formats": [dt.newbyteorder("<") for _, dt in names],
                      "offsets": offsets, "itemsize": step})
    rec = np.zeros(n, dtype=dtype)
    rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    for name, values in extra.items():
        rec[name] = values
    height, width = organized_shape if organized_shape is not None else (1, n)
    if height * width != n:
        raise ValueError(f"organized shape {organized_shape} does not hold {n} points")
    fields = tuple((nm, o, _NUMPY_TO_PF[dt], 1) for (nm, dt), o in zip(names, offsets, strict=True))
    return PointCloudLayout(height=height, width=width, fields=fields, point_step=step,
                            row_step=step * width, data=rec.tobytes(),
                            is_dense=bool(np.all(np.isfinite(pts))))


def unpack_xyz(data: bytes, point_step: int, count: int, offsets: tuple[int, int, int] = (0, 4, 8)) -> np.ndarray:
    """Read xyz float32 (little endian) back from PointCloud2 data."""
    rows = np.frombuffer(data, dtype=np.uint8, count=count * point_step).reshape(count, point_step)
    cols = [rows[:, o:o + 4].copy().view("<f4")[:, 0] for o in offsets]
    return np.column_stack(cols).astype(np.float64)
