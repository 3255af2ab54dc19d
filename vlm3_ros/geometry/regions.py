"""Metric quantities of image regions from registered depth: the SpatialRGPT-Bench quantitative
kinds (distance between two regions, direct / horizontal / vertical, and a region's width and
height), measured the one way the ground-truth double answers them and the evaluation and the
training export score and label them.

A region is a box in original pixels; its points are the depth pixels inside it back-projected
into the camera's optical frame. A region's centre is the per-axis median of its points (robust
to the background the box also holds), its extent the 5-95 % range along an axis. Vertical is the
optical y axis (a level camera); horizontal is the distance in the x-z plane.
"""

from __future__ import annotations

import numpy as np

from vlm3_ros.geometry.backproject import rays_z1
from vlm3_ros.geometry.camera import CameraModel

# SpatialRGPT-Bench's category names (the evaluation reports them under these)
KINDS = ("distance_data", "horizontal_distance_data", "vertical_distance_data", "width_data",
         "height_data")
TWO_REGIONS = ("distance_data", "horizontal_distance_data", "vertical_distance_data")
MIN_POINTS = 3


def region_points(box_px: np.ndarray, depth_z: np.ndarray, camera: CameraModel, stride: int = 2) -> np.ndarray:
    """Points (N, 3) in the optical frame of every ``stride``-th depth pixel inside ``box_px``
    (x1, y1, x2, y2 in original pixels, clipped to the image); pixels without depth are left out."""
    h, w = depth_z.shape
    x1, y1, x2, y2 = (int(np.clip(v, 0, lim)) for v, lim in zip(box_px, (w, h, w, h), strict=True))
    vv, uu = np.mgrid[y1:max(y2, y1 + 1):stride, x1:max(x2, x1 + 1):stride]
    uv = np.column_stack([uu.ravel(), vv.ravel()]).astype(np.float64)
    uv = uv[(uv[:, 0] < w) & (uv[:, 1] < h)]
    z = depth_z[uv[:, 1].astype(int), uv[:, 0].astype(int)]
    ok = np.isfinite(z) & (z > 0)
    rays = rays_z1(camera.undistort_pixels(uv[ok]), camera.rectified().K)
    return rays * z[ok][:, None]


def depth_coverage(box_px: np.ndarray, depth_z: np.ndarray) -> float:
    """The fraction of the box's pixels that have depth (0 for an empty box)."""
    h, w = depth_z.shape
    x1, y1, x2, y2 = (int(np.clip(v, 0, lim)) for v, lim in zip(box_px, (w, h, w, h), strict=True))
    patch = depth_z[y1:y2, x1:x2]
    return float(np.mean(np.isfinite(patch) & (patch > 0))) if patch.size else 0.0


def measure(kind: str, regions: list[np.ndarray]) -> float:
    """The quantity ``kind`` (one of :data:`KINDS`) in metres from the regions' points (two
    regions for the distances, the first one for width and height)."""
    if kind not in KINDS:
        raise ValueError(f"unknown region quantity {kind!r}; one of {KINDS}")
    need = 2 if kind in TWO_REGIONS else 1
    if len(regions) < need or any(len(r) < MIN_POINTS for r in regions[:need]):
        raise ValueError(f"{kind} needs {need} region(s) with at least {MIN_POINTS} depth points each")
    if kind in ("width_data", "height_data"):
        axis = 0 if kind == "width_data" else 1
        lo, hi = np.percentile(regions[0][:, axis], [5, 95])
        return float(hi - lo)
    d = np.median(regions[1], axis=0) - np.median(regions[0], axis=0)
    if kind == "distance_data":
        return float(np.linalg.norm(d))
    if kind == "vertical_distance_data":
        return abs(float(d[1]))
    return float(np.hypot(d[0], d[2]))
