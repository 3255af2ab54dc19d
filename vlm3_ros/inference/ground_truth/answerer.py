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
from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.geometry import coords, regions
from vlm3_ros.geometry.unify import UnifiedView

_DEPTH_COORDS = re.compile(r"coordinates \((\d+), (\d+)\)")
_CORR_COORDS = re.compile(r"pixel \((\d+), (\d+)\) in the first image")
_BOX = re.compile(r"bounding box region \((\d+), (\d+), (\d+), (\d+)\)")
_PROMPTS = PromptSet()   # the contract's default box text, which _BOX reads
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
        return "vertical_distance_data"
    if "horizontal distance" in t or "horizontally" in t:
        return "horizontal_distance_data"
    if "how far" in t or "distance" in t or "apart" in t:
        return "distance_data"
    if re.search(r"\b(how tall|height)\b", t):
        return "height_data"
    if re.search(r"\b(how wide|width)\b", t):
        return "width_data"
    return None


def answer_object(prompt: str, depth_z: np.ndarray, view: UnifiedView) -> str:
    """Answer a quantitative object prompt (distance between two regions, a region's height or
    width) from the registered depth, measured by :mod:`vlm3_ros.geometry.regions` on the boxes
    the prompt's integers name (mapped back to original pixels)."""
    kind = object_kind(prompt)
    boxes_n = [tuple(int(g) for g in m.groups()) for m in _BOX.finditer(prompt)]
    if kind is None or len(boxes_n) < (2 if kind in regions.TWO_REGIONS else 1):
        return CANNOT
    w, h = view.camera.width * view.sx, view.camera.height * view.sy
    pts = []
    for n in boxes_n[:2 if kind in regions.TWO_REGIONS else 1]:
        bu = coords.box_from_prompt(np.array(n), w, h)[0]
        corners = view.from_unified(np.array([[bu[0], bu[1]], [bu[2], bu[3]]]))
        p = regions.region_points(np.concatenate([corners.min(axis=0), corners.max(axis=0)]), depth_z, view.camera)
        if len(p) < regions.MIN_POINTS:
            return "The region has no depth readings."
        pts.append(p)
    texts = [_PROMPTS.render_box(b) for b in boxes_n[:2]]   # named as the prompt wrote them
    return answers.format_object_quantity(kind, regions.measure(kind, pts), *texts)
