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
from vlm3_ros.geometry import coords, pose
from vlm3_ros.geometry.unify import UnifiedView

_DEPTH_COORDS = re.compile(r"coordinates \((\d+), (\d+)\)")
_CORR_COORDS = re.compile(r"pixel \((\d+), (\d+)\) in the first image")


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


def answer_pose(question_key: str, T_1_2: np.ndarray) -> str:
    """Answer one of the four pose questions from the true pose of camera 2 in camera 1."""
    R, t = T_1_2[:3, :3], T_1_2[:3, 3]
    if question_key == "rotation":
        return answers.format_rotation_angle(pose.rotation_angle_deg(R))
    if question_key == "ypr":
        return answers.format_ypr(*pose.matrix_to_ypr(R))
    dist = float(np.linalg.norm(t))
    if question_key == "direction":
        u = t / dist if dist > 0 else np.array([0.0, 0.0, 1.0])
        return answers.format_direction(*u)
    if question_key == "distance":
        return answers.format_distance(dist)
    raise ValueError(f"unknown pose question {question_key!r}")


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
