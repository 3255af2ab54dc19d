"""Pixel and region references written as text: unified pixels <-> the prompt's integers.

Ranges (the contract): depth points as integers in [0, 2000) of the unified width/height;
object-question boxes as integers in [0, 1000]; correspondence points in [0, 1000] of each
unified image (float in labels, int(round(.)) in prompts). All functions are vectorised.
"""

from __future__ import annotations

import numpy as np

DEPTH_RANGE = 2000
BOX_RANGE = 1000
CORR_RANGE = 1000


def depth_to_prompt(uv_unified: np.ndarray, width: int, height: int) -> np.ndarray:
    """Unified pixels (N, 2) -> integers (nx, ny) in [0, 2000): round(u / W * 2000)."""
    uv = np.asarray(uv_unified, dtype=np.float64).reshape(-1, 2)
    n = np.rint(uv / np.array([width, height]) * DEPTH_RANGE).astype(np.int64)
    return np.clip(n, 0, DEPTH_RANGE - 1)


def depth_from_prompt(n: np.ndarray, width: int, height: int) -> np.ndarray:
    """Prompt integers (N, 2) -> unified pixels (the inverse of depth_to_prompt, sub-pixel)."""
    n = np.asarray(n, dtype=np.float64).reshape(-1, 2)
    return n / DEPTH_RANGE * np.array([width, height])


def box_to_prompt(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes (N, 4) x1, y1, x2, y2 as fractions of (width, height) -> integers in [0, 1000].

    The reference rounds half to even (Python's round): round(x / W * 1000), from the ORIGINAL
    box and size (VLM3 sample_data/spatialrgpt_labels.json: SpatialRGPT-Bench box
    [6, 292, 233, 432] of a 1024x768 image -> (6, 380, 228, 562); 767 / 768 -> 999, 432 / 768 -> 562).
    Pass original-image boxes with the original size (equivalently, unified boxes with the
    unified size before integer rounding).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scale = np.array([width, height, width, height])
    n = np.round(b / scale * BOX_RANGE).astype(np.int64)     # numpy rounds half to even, like Python
    return np.clip(n, 0, BOX_RANGE)


def box_from_prompt(n: np.ndarray, width: float, height: float) -> np.ndarray:
    n = np.asarray(n, dtype=np.float64).reshape(-1, 4)
    return n / BOX_RANGE * np.array([width, height, width, height])


def corr_to_norm(uv_unified: np.ndarray, width: int, height: int) -> np.ndarray:
    """Unified pixels -> float coordinates in [0, 1000] (the label frame)."""
    uv = np.asarray(uv_unified, dtype=np.float64).reshape(-1, 2)
    return uv / np.array([width, height]) * CORR_RANGE


def corr_to_prompt(uv_unified: np.ndarray, width: int, height: int) -> np.ndarray:
    """Unified pixels -> the integers written in the prompt: int(round(u / W * 1000))."""
    return np.clip(np.rint(corr_to_norm(uv_unified, width, height)), 0, CORR_RANGE).astype(np.int64)


def corr_from_norm(n: np.ndarray, width: int, height: int) -> np.ndarray:
    n = np.asarray(n, dtype=np.float64).reshape(-1, 2)
    return n / CORR_RANGE * np.array([width, height])
