"""What the model was asked and what it answered, drawn on the frame: the node's debug image.

Depth points as rings at the queried pixels labelled with their metres (green) or an x (red, with
no parsable answer); correspondences as rings at the answered pixels of the second frame;
object regions as boxes with the parsed answer; the pose as text. A title line names the
service, the status and the frame. Pure OpenCV on a copy of the frame (RGB in, RGB out).
"""

from __future__ import annotations

import cv2
import numpy as np

from vlm3_ros.geometry.frame import Frame
from vlm3_ros.tasks.common import PointCode
from vlm3_ros.tasks.corr_task import CorrResult
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.object_task import ObjectResult
from vlm3_ros.tasks.pose_task import PoseResult

OK_RGB = (0, 255, 0)
FAIL_RGB = (255, 40, 40)
TEXT_RGB = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(img: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, int, int] = TEXT_RGB,
          scale: float = 0.45) -> None:
    # a dark outline keeps the text readable on any background
    cv2.putText(img, text, org, _FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, scale, color, 1, cv2.LINE_AA)


def _title(img: np.ndarray, title: str) -> None:
    cv2.rectangle(img, (0, 0), (img.shape[1], 18), (0, 0, 0), -1)
    _text(img, title[:110], (4, 13))


def _ring(img: np.ndarray, uv: np.ndarray, ok: bool, label: str) -> None:
    x, y = round(float(uv[0])), round(float(uv[1]))
    color = OK_RGB if ok else FAIL_RGB
    cv2.circle(img, (x, y), 6, color, 2, cv2.LINE_AA)
    img[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = color  # the exact pixel, marked
    _text(img, label, (x + 8, y - 6), color)


def depth_view(frame: Frame, pixels: np.ndarray, r: DepthResult, title: str) -> np.ndarray:
    img = frame.image.copy()
    px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    for uv, d, c in zip(px, r.depth, r.codes, strict=True):
        if not np.all(np.isfinite(uv)) or c == PointCode.OUT_OF_IMAGE:
            continue
        ok = c == PointCode.OK
        _ring(img, uv, ok, f"{d:.2f}m" if ok else "x")
    _title(img, title)
    return img


def corr_view(frame_b: Frame, r: CorrResult, title: str) -> np.ndarray:
    img = frame_b.image.copy()
    for i, (uv, c) in enumerate(zip(r.pixels_b, r.codes, strict=True)):
        if c == PointCode.OK and np.all(np.isfinite(uv)):
            _ring(img, uv, True, f"#{i}")
    _title(img, title)
    return img


def object_view(frame: Frame, boxes: np.ndarray, r: ObjectResult, title: str) -> np.ndarray:
    img = frame.image.copy()
    ok = r.answer is not None
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), OK_RGB if ok else FAIL_RGB, 2)
        _text(img, f"Region [{i}]", (int(x1) + 3, int(y1) + 14), OK_RGB if ok else FAIL_RGB)
    answer = r.answer.text if r.answer is not None else f"no answer: {r.reason}"
    _text(img, answer[:100], (4, img.shape[0] - 8))
    _title(img, title)
    return img


def pose_view(frame_b: Frame, r: PoseResult, title: str) -> np.ndarray:
    img = frame_b.image.copy()
    if r.ypr_deg is not None:
        y, p, rr = r.ypr_deg
        _text(img, f"yaw {y:+.1f}  pitch {p:+.1f}  roll {rr:+.1f} deg", (4, 36), OK_RGB)
    if r.distance_m is not None:
        _text(img, f"distance {r.distance_m:.2f} m", (4, 56), OK_RGB)
    if r.T_a_b is None:
        _text(img, "no pose", (4, 36), FAIL_RGB)
    _title(img, title)
    return img


def render(name: str, code_name: str, frames: list[Frame], result: object, inputs: dict[str, np.ndarray]
           ) -> tuple[np.ndarray, Frame] | None:
    """The debug image of one reply and the frame it is drawn on (None when there is nothing to draw)."""
    if not frames:
        return None
    shown = frames[-1]
    title = f"{name}: {code_name} | {shown.frame_id} {shown.stamp_ns * 1e-9:.3f}"
    if isinstance(result, DepthResult) and "pixels" in inputs:
        return depth_view(frames[0], inputs["pixels"], result, title), frames[0]
    if isinstance(result, CorrResult):
        return corr_view(shown, result, title), shown
    if isinstance(result, ObjectResult) and "boxes" in inputs:
        return object_view(frames[0], inputs["boxes"], result, title), frames[0]
    if isinstance(result, PoseResult):
        return pose_view(shown, result, title), shown
    return None
