"""TEST DOUBLE: a ground-truth "model" that answers VLM3 prompts from real sensor data.

It is not a model and never stands in for one in a product path. It reads exactly what a model
would get (the unified image size and the prompt text with its integer coordinates), looks the
answer up in ground truth, and writes it in the checkpoint's answer format. Chains built on it
(pixel -> prompt integers -> text -> parse -> 3D) must then reproduce the ground truth within the
precision of the integers and of the text: that is what the geometry tests measure.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from vlm3_ros.contract import answers
from vlm3_ros.geometry import coords
from vlm3_ros.geometry.unify import UnifiedView

_DEPTH_COORDS = re.compile(r"coordinates \((\d+), (\d+)\)")
_CORR_COORDS = re.compile(r"pixel \((\d+), (\d+)\) in the first image")
_BOX = re.compile(r"bounding box region \((\d+), (\d+), (\d+), (\d+)\)")
CANNOT = "I cannot answer this question from the recorded ground truth."


def unified_depth(depth_z: np.ndarray, view: UnifiedView) -> np.ndarray:
    """The depth image resampled to the unified image (nearest: no mixing across edges)."""
    src = depth_z.astype(np.float32)
    if view.rectified:
        src = view.camera.undistort_image(src, interpolation=cv2.INTER_NEAREST)
    return cv2.resize(src, (view.width, view.height), interpolation=cv2.INTER_NEAREST)


def answer_depth(prompt: str, depth_unified: np.ndarray, decimals: int = 3) -> str:
    """Answer a depth prompt with the value of the unified depth image at its coordinates."""
    m = _DEPTH_COORDS.search(prompt)
    if m is None:
        return "I cannot find the coordinates."
    h, w = depth_unified.shape[:2]
    uv = coords.depth_from_prompt(np.array([[int(m.group(1)), int(m.group(2))]]), w, h)[0]
    u = int(np.clip(np.rint(uv[0]), 0, w - 1))
    v = int(np.clip(np.rint(uv[1]), 0, h - 1))
    d = float(depth_unified[v, u])
    if not d > 0:
        return "<think> No depth reading at this point. </think><answer> unknown </answer>"
    return f"<answer> {d:.{decimals}f} </answer>"


def answer_corr(prompt: str, size1: tuple[int, int], size2: tuple[int, int],
                match_unified: np.ndarray, valid: np.ndarray, grid_uv1: np.ndarray) -> str:
    """Answer a correspondence prompt from precomputed matches (unified pixels of image 1 ->
    image 2); the nearest precomputed source pixel to the prompt's point is used."""
    m = _CORR_COORDS.search(prompt)
    if m is None:
        return "I cannot find the pixel."
    n1 = np.array([[int(m.group(1)), int(m.group(2))]], dtype=np.float64)
    uv1 = coords.corr_from_norm(n1, *size1)[0]
    k = int(np.argmin(np.linalg.norm(grid_uv1 - uv1, axis=1)))
    if not valid[k]:
        return "The point is not visible in the second image."
    n2 = coords.corr_to_norm(match_unified[k:k + 1], *size2)[0]
    return answers.format_point(*n2)


def object_kind(question: str) -> str | None:
    """Which quantitative SpatialRGPT-Bench question this is (None: one the depth cannot answer)."""
    t = question.lower()
    if "vertical distance" in t or "vertically" in t:
        return "vertical_distance"
    if "horizontal distance" in t or "horizontally" in t:
        return "horizontal_distance"
    if "how far" in t or "distance" in t or "apart" in t:
        return "direct_distance"
    if re.search(r"\b(how tall|height)\b", t):
        return "height_data"
    if re.search(r"\b(how wide|width)\b", t):
        return "width_data"
    return None


def region_points(box_px: np.ndarray, depth_z: np.ndarray, view: UnifiedView, stride: int = 2) -> np.ndarray:
    """Points (N, 3) in the optical frame of every depth pixel inside ``box_px`` (original pixels)."""
    from vlm3_ros.geometry.backproject import rays_z1

    h, w = depth_z.shape
    x1, y1, x2, y2 = (int(np.clip(v, 0, lim)) for v, lim in zip(box_px, (w, h, w, h), strict=True))
    vv, uu = np.mgrid[y1:max(y2, y1 + 1):stride, x1:max(x2, x1 + 1):stride]
    uv = np.column_stack([uu.ravel(), vv.ravel()]).astype(np.float64)
    uv = uv[(uv[:, 0] < w) & (uv[:, 1] < h)]
    z = depth_z[uv[:, 1].astype(int), uv[:, 0].astype(int)]
    ok = z > 0
    cam = view.camera
    rays = rays_z1(cam.undistort_pixels(uv[ok]), cam.rectified().K)
    return rays * z[ok][:, None]


def answer_object(prompt: str, depth_z: np.ndarray, view: UnifiedView) -> str:
    """Answer a quantitative object prompt (distance between two regions, a region's height or
    width) from the registered depth: each region's points back-projected, its centre the
    per-axis median, its extent the 5-95 % range; vertical = the optical y axis (a level camera)."""
    kind = object_kind(prompt)
    boxes_n = [tuple(int(g) for g in m.groups()) for m in _BOX.finditer(prompt)]
    two = kind not in ("height_data", "width_data")
    if kind is None or len(boxes_n) < (2 if two else 1):
        return CANNOT
    w, h = view.camera.width * view.sx, view.camera.height * view.sy
    regions = []
    for n in boxes_n[:2]:
        bu = coords.box_from_prompt(np.array(n), w, h)[0]
        corners = view.from_unified(np.array([[bu[0], bu[1]], [bu[2], bu[3]]]))
        pts = region_points(np.concatenate([corners.min(axis=0), corners.max(axis=0)]), depth_z, view)
        if len(pts) < 3:
            return "The region has no depth readings."
        regions.append(pts)
    first = "bounding box region ({}, {}, {}, {})".format(*boxes_n[0])
    if kind in ("height_data", "width_data"):
        axis = 1 if kind == "height_data" else 0
        lo, hi = np.percentile(regions[0][:, axis], [5, 95])
        word = "tall" if kind == "height_data" else "wide"
        return f"{first} is {hi - lo:.2f} meters {word}."
    d = np.median(regions[1], axis=0) - np.median(regions[0], axis=0)
    value = {"direct_distance": float(np.linalg.norm(d)), "vertical_distance": abs(float(d[1])),
             "horizontal_distance": float(np.hypot(d[0], d[2]))}[kind]
    how = {"direct_distance": "", "vertical_distance": " vertically", "horizontal_distance": " horizontally"}[kind]
    second = "bounding box region ({}, {}, {}, {})".format(*boxes_n[1])
    return f"{first} and {second} are {value:.2f} meters apart{how}."
