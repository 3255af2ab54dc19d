"""Readers for the published label files, so the paper's protocol runs on standard datasets:

- DepthLM JSONL (one image per line): ``{"image": path relative to the file, "intrinsics":
  [fx, fy, cx, cy, width, height], "pixel_coords": [[x, y], ...] in original pixels,
  "depth": [metres, ...]}``.
- VLM3 sample label files (facebookresearch/VLM3 ``sample_data/*_labels.json``): ``depth_labels``
  (image already resized to f = 1000, ``samples[].pixel_coord_resized`` + ``depth_meters``),
  ``pose_labels`` (two images resized to f = 750, ``ground_truth_pose`` yaw/pitch/roll, unit
  vector and distance) and ``pixel_corr_labels`` (two images resized to a 1024 long edge,
  ``correspondences[].img1_pixel_in_resized`` -> ``img2_pixel_in_resized``).
Images that are already unified get a CameraInfo for which unification is the identity.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vlm3_ros.geometry import pose as P
from vlm3_ros.geometry.camera import CameraInfoData, CameraModel
from vlm3_ros.geometry.frame import Frame


class LabelError(ValueError):
    """The label file is not in a known format (the message names the file and the field)."""


@dataclass
class DepthLabels:
    frame: Frame
    pixels: np.ndarray        # (N, 2) pixels of frame.image
    depth: np.ndarray         # (N,) metres


@dataclass
class PoseLabel:
    frame_a: Frame
    frame_b: Frame
    T_a_b: np.ndarray         # camera B in camera A (metric when ``metric``)
    metric: bool


@dataclass
class CorrLabels:
    frame_a: Frame
    frame_b: Frame
    pixels_a: np.ndarray
    pixels_b: np.ndarray


def _image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise LabelError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _frame(img: np.ndarray, fx: float, fy: float, cx: float, cy: float, key: int, name: str) -> Frame:
    info = CameraInfoData.from_intrinsics(img.shape[1], img.shape[0], fx, fy, cx, cy, frame_id=name)
    return Frame(img, CameraModel.from_camera_info(info), key, name)


def read_depthlm_jsonl(path: Path, max_images: int = 0) -> list[DepthLabels]:
    out = []
    path = Path(path)
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            fx, fy, cx, cy, w, h = (float(v) for v in rec["intrinsics"][:6])
            px = np.asarray(rec["pixel_coords"], dtype=np.float64).reshape(-1, 2)
            depth = np.asarray(rec["depth"], dtype=np.float64)
            image_rel = rec["image"]
        except (KeyError, ValueError, TypeError) as e:
            raise LabelError(f"{path}:{i + 1}: not a DepthLM record ({e})") from e
        img = _image(path.parent / image_rel)
        if (img.shape[1], img.shape[0]) != (int(w), int(h)):
            raise LabelError(f"{path}:{i + 1}: image is {img.shape[1]}x{img.shape[0]}, intrinsics say {w:g}x{h:g}")
        if len(px) != len(depth):
            raise LabelError(f"{path}:{i + 1}: {len(px)} pixel_coords but {len(depth)} depths")
        out.append(DepthLabels(_frame(img, fx, fy, cx, cy, i, Path(image_rel).name), px, depth))
        if max_images and len(out) >= max_images:
            break
    return out


def read_vlm3_labels(path: Path) -> DepthLabels | PoseLabel | CorrLabels:
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LabelError(f"{path}: not JSON ({e})") from e
    base = path.parent
    try:
        if "samples" in d and "intrinsics_after_focal_normalization_to_1000" in d:
            k = d["intrinsics_after_focal_normalization_to_1000"]
            img = _image(base / d["image"])
            px = np.array([s["pixel_coord_resized"] for s in d["samples"]], dtype=np.float64)
            depth = np.array([s["depth_meters"] for s in d["samples"]], dtype=np.float64)
            return DepthLabels(_frame(img, k["fx"], k["fy"], k["cx"], k["cy"], 0, d["image"]), px, depth)
        if "ground_truth_pose" in d:
            ka, kb = d["intrinsics_1_resized"], d["intrinsics_2_resized"]
            fa = _frame(_image(base / d["image_1"]), ka["fx"], ka["fy"], ka["cx"], ka["cy"], 1, d["image_1"])
            fb = _frame(_image(base / d["image_2"]), kb["fx"], kb["fy"], kb["cx"], kb["cy"], 2, d["image_2"])
            g = d["ground_truth_pose"]
            u = np.array([float(v) for v in re.findall(r"[-+]?\d*\.?\d+", g["translation_unit_vector"])][:3])
            dist = g.get("translation_distance_m")
            t = u / np.linalg.norm(u) * (float(dist) if dist is not None else 1.0)
            T = P.make_T(P.ypr_to_matrix(g["yaw_deg"], g["pitch_deg"], g["roll_deg"]), t)
            return PoseLabel(fa, fb, T, dist is not None)
        if "correspondences" in d:
            ia, ib = _image(base / d["image_1"]), _image(base / d["image_2"])
            # Already at the 1024 long edge; the pinhole only has to be valid (correspondence needs no focal).
            fa = _frame(ia, max(ia.shape[:2]), max(ia.shape[:2]), ia.shape[1] / 2, ia.shape[0] / 2, 1, d["image_1"])
            fb = _frame(ib, max(ib.shape[:2]), max(ib.shape[:2]), ib.shape[1] / 2, ib.shape[0] / 2, 2, d["image_2"])
            pa = np.array([c["img1_pixel_in_resized"] for c in d["correspondences"]], dtype=np.float64)
            pb = np.array([c["img2_pixel_in_resized"] for c in d["correspondences"]], dtype=np.float64)
            return CorrLabels(fa, fb, pa, pb)
    except (KeyError, TypeError, ValueError) as e:
        raise LabelError(f"{path}: missing or malformed field ({e})") from e
    raise LabelError(f"{path}: not a VLM3 depth, pose or pixel_corr label file")
