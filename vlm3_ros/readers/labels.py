"""Readers for the published label files, so the paper's protocol runs on standard datasets:

- DepthLM JSONL (one image per line): ``{"image": path relative to the file, "intrinsics":
  [fx, fy, cx, cy, width, height], "pixel_coords": [[x, y], ...] in original pixels,
  "depth": [metres, ...]}``.
- VLM3 sample label files (facebookresearch/VLM3 ``sample_data/*_labels.json``): ``depth_labels``
  (image already resized to f = 1000, ``samples[].pixel_coord_resized`` + ``depth_meters``),
  ``pose_labels`` (two images resized to f = 750, ``ground_truth_pose`` yaw/pitch/roll, unit
  vector and distance) and ``pixel_corr_labels`` (two images resized to a 1024 long edge,
  ``correspondences[].img1_pixel_in_resized`` -> ``img2_pixel_in_resized``) and
  ``spatialrgpt_labels`` (one SpatialRGPT-Bench item: image resized to f = 1000, the original
  size and intrinsics, ``bboxes[].bbox_normalized_1000``, ``raw_user_msg`` with ``<mask>``,
  ``raw_assistant_msg`` with ``Region [i]``, ``qa_info``).
- SpatialRGPT-Bench question files (AnjieCheng/SpatialRGPT, HF a8cheng/SpatialRGPT-Bench): a JSON
  array or JSONL of ``{id, image_info: {file_path, width, height}, text_q (Region [i]),
  conversations: [human with <mask>, gpt answer], bbox: [[x1, y1, x2, y2] original pixels],
  qa_info: {type, category}}``; the parquet export's Python-repr string fields are read too. The
  benchmark carries no intrinsics (VLM3 unifies with them): each record needs ``intrinsics``
  ``{fx, fy, cx, cy}`` or the side file ``<name>.intrinsics.json`` mapping ``id`` or
  ``file_path`` to one.
Images that are already unified get a CameraInfo for which unification is the identity.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class ObjectLabel:
    """One SpatialRGPT-Bench question on regions of one frame."""

    frame: Frame
    boxes: np.ndarray         # (N, 4) x1, y1, x2, y2 in original pixels of frame.image
    question: str             # with ``Region [i]`` references
    answer: str               # the benchmark's answer text (``Region [i]`` references)
    qa_type: str              # quantitative | qualitative
    category: str             # e.g. distance_data, height_data, direction, left_predicate, tall_choice
    id: str = ""


_MASK = re.compile(r"<mask>")


def masks_to_regions(text: str) -> str:
    """``<image>\n Can you confirm if <mask> is ...`` -> ``Can you confirm if Region [0] is ...``."""
    counter = iter(range(10_000))
    text = text.replace("<image>", "").strip()
    return _MASK.sub(lambda _m: f"Region [{next(counter)}]", text)


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


def read_vlm3_labels(path: Path) -> DepthLabels | PoseLabel | CorrLabels | ObjectLabel:
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
        if "bboxes" in d and "qa_info" in d:
            return _vlm3_object(d, base)
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
    raise LabelError(f"{path}: not a VLM3 depth, pose, pixel_corr or spatialrgpt label file")


def _vlm3_object(d: dict[str, Any], base: Path) -> ObjectLabel:
    """The JPEG is stored resized to f = 1000; its prompt integers were made from the original box
    and size. The frame is rebuilt at the original size with the original intrinsics (the node
    unifies it again), and the boxes from the integers, so the node writes exactly the file's
    prompt integers (round(n / 1000 * W) / W * 1000 rounds back to n)."""
    w, h = int(d["image_size_original"]["width"]), int(d["image_size_original"]["height"])
    k = d["intrinsics_original"]
    img = cv2.resize(_image(base / d["image"]), (w, h), interpolation=cv2.INTER_AREA)
    n = np.array([b["bbox_normalized_1000"] for b in sorted(d["bboxes"], key=lambda b: b["region_id"])],
                 dtype=np.float64)
    boxes = n / 1000.0 * np.array([w, h, w, h])
    qa = d["qa_info"]
    return ObjectLabel(_frame(img, k["fx"], k["fy"], k["cx"], k["cy"], 0, d["image"]), boxes,
                       masks_to_regions(d["raw_user_msg"]), d["raw_assistant_msg"], str(qa["type"]),
                       str(qa["category"]), str(d.get("id", "")))


def _field(rec: dict[str, Any], key: str) -> Any:
    """A record's field; the parquet export stores nested fields as Python-repr strings."""
    v = rec[key]
    if isinstance(v, str) and key != "text_q" and v[:1] in "[{":
        return ast.literal_eval(v)
    return v


def _records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        pass
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise LabelError(f"{path}:{i}: not JSON ({e})") from None
    return out


def is_spatialrgpt_bench(path: Path) -> bool:
    """Whether ``path`` holds SpatialRGPT-Bench records (``text_q`` + ``qa_info``)."""
    try:
        recs = _records(Path(path))
    except (OSError, LabelError):
        return False
    return bool(recs) and isinstance(recs[0], dict) and "text_q" in recs[0] and "qa_info" in recs[0]


def read_spatialrgpt_bench(path: Path, image_root: Path | None = None, max_items: int = 0) -> list[ObjectLabel]:
    """SpatialRGPT-Bench questions (images under ``image_root``, default the file's folder)."""
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    side = path.with_name(path.stem + ".intrinsics.json")
    side_k = json.loads(side.read_text()) if side.is_file() else {}
    out: list[ObjectLabel] = []
    images: dict[str, np.ndarray] = {}
    for i, rec in enumerate(_records(path)):
        where = f"{path}: record {i} ({rec.get('id', '?')})"
        try:
            info, qa, conv = _field(rec, "image_info"), _field(rec, "qa_info"), _field(rec, "conversations")
            boxes = np.asarray(_field(rec, "bbox"), dtype=np.float64).reshape(-1, 4)
            file_path = str(info["file_path"])
            k = rec.get("intrinsics") or side_k.get(str(rec.get("id"))) or side_k.get(file_path)
            if k is None:
                raise LabelError(f"{where}: no intrinsics; SpatialRGPT-Bench has none and VLM3 unifies the focal "
                                 f"length with them: add \"intrinsics\": {{\"fx\", \"fy\", \"cx\", \"cy\"}} to the "
                                 f"record or map its id or file_path in {side.name}")
            question = rec.get("text_q") or masks_to_regions(conv[0]["value"])
            answer = conv[1]["value"]
        except (KeyError, IndexError, TypeError, ValueError, SyntaxError) as e:
            raise LabelError(f"{where}: not a SpatialRGPT-Bench record ({e!r})") from e
        if file_path not in images:
            images[file_path] = _image(root / file_path)
        img = images[file_path]
        w, h = int(info.get("width", img.shape[1])), int(info.get("height", img.shape[0]))
        if (img.shape[1], img.shape[0]) != (w, h):
            raise LabelError(f"{where}: image is {img.shape[1]}x{img.shape[0]}, image_info says {w}x{h}")
        frame = _frame(img, float(k["fx"]), float(k["fy"]), float(k["cx"]), float(k["cy"]), i, file_path)
        out.append(ObjectLabel(frame, boxes, question, answer, str(qa["type"]), str(qa["category"]),
                               str(rec.get("id", i))))
        if max_items and len(out) >= max_items:
            break
    return out
