"""The VLM3 task pipeline: frames + requests in, metric results out. Used by the node and by the
rosbag evaluation alike (one copy of the logic).

For each task it does the contract's preprocessing (focal unification), writes the pixel/region
references as prompt integers, asks the backend, parses the answers strictly and maps them back
to original pixels and metric 3D in the camera optical frame. Each point carries a status code.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

import numpy as np

from vlm3_ros import answers, coords, pose
from vlm3_ros.backproject import DepthType, backproject, convert_depth
from vlm3_ros.camera import CameraModel
from vlm3_ros.inference.types import Answer, Backend, BackendError, Question
from vlm3_ros.prompts import PromptSet
from vlm3_ros.unify import TASK_UNIFY, UnifiedView, UnifyConfig, plan, render

Task = Literal["depth", "object", "corr", "pose"]
TASKS: tuple[Task, ...] = ("depth", "object", "corr", "pose")


class PointCode(IntEnum):
    """Mirrors vlm3_ros/msg/PointStatus."""

    OK = 0
    OUT_OF_IMAGE = 1
    PARSE_FAILURE = 2
    INVALID_VALUE = 3
    NOT_RUN = 4


class RequestError(ValueError):
    """The request itself is invalid (the node answers INVALID_REQUEST with this message)."""


@dataclass(frozen=True)
class Frame:
    """One camera image with its calibration. ``image`` is RGB uint8 (H, W, 3)."""

    image: np.ndarray
    camera: CameraModel
    stamp_ns: int
    frame_id: str = ""

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise RequestError(f"frame image must be RGB uint8 (H, W, 3), got {self.image.dtype} {self.image.shape}")
        self.camera.check_image_size(self.image.shape[1], self.image.shape[0])


@dataclass(frozen=True)
class PipelineSettings:
    unify: dict[str, UnifyConfig] = field(default_factory=lambda: dict(TASK_UNIFY))
    prompts: PromptSet = field(default_factory=PromptSet)
    max_new_tokens: dict[str, int] = field(
        default_factory=lambda: {"depth": 256, "object": 128, "corr": 64, "pose": 96})
    model_depth_type: DepthType = "range"
    interpolation: str = "auto"
    max_points: int = 256
    render_cache: int = 16


@dataclass
class Timings:
    preprocess_s: float = 0.0
    inference_s: float = 0.0
    prompt_tokens: int = 0
    generated_tokens: int = 0

    def add(self, answers_: list[Answer]) -> None:
        self.prompt_tokens += sum(a.prompt_tokens for a in answers_)
        self.generated_tokens += sum(a.generated_tokens for a in answers_)


@dataclass
class DepthResult:
    depth: np.ndarray              # (N,) in the requested depth type, NaN where code != OK
    points: np.ndarray             # (N, 3) optical frame, NaN where code != OK
    codes: np.ndarray              # (N,) PointCode
    reasons: list[str]
    raw: list[str]
    timings: Timings


@dataclass
class PoseResult:
    T_a_b: np.ndarray | None       # pose of camera B in camera A (4x4); None when not parsed
    direction: np.ndarray | None   # unit translation in A's optical frame
    distance_m: float | None
    ypr_deg: tuple[float, float, float] | None
    rotation_angle_deg: float | None
    raw: dict[str, str]
    reasons: dict[str, str]
    timings: Timings

    @property
    def ok(self) -> bool:
        return self.T_a_b is not None


@dataclass
class CorrResult:
    pixels_b: np.ndarray           # (N, 2) original pixels of B, NaN where code != OK
    codes: np.ndarray
    reasons: list[str]
    raw: list[str]
    timings: Timings


@dataclass
class SpatialResult:
    answer: answers.SpatialAnswer | None
    prompt: str
    raw: str
    reason: str
    timings: Timings


class Pipeline:
    """Runs the four tasks against per-task backends. Thread-safe for concurrent callers only
    through the caller's serialisation (the node runs it on one inference worker)."""

    def __init__(self, backends: dict[str, Backend], settings: PipelineSettings | None = None) -> None:
        self.backends = backends
        self.settings = settings or PipelineSettings()
        self._renders: OrderedDict[tuple, tuple[UnifiedView, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ shared
    def backend(self, task: str) -> Backend:
        b = self.backends.get(task)
        if b is None:
            raise BackendError(f"task '{task}' is not enabled (no model configured for it)")
        return b

    def unified(self, task: str, frame: Frame) -> tuple[UnifiedView, np.ndarray]:
        """The unified view and image of ``frame`` for ``task`` (small LRU: repeated queries on a
        frame do not resize again)."""
        key = (task, frame.stamp_ns, frame.frame_id, frame.image.shape, id(frame.image))
        with self._lock:
            hit = self._renders.get(key)
            if hit is not None:
                self._renders.move_to_end(key)
                return hit
        view = plan(frame.camera, self.settings.unify[task])
        img = render(frame.image, view, self.settings.interpolation)
        with self._lock:
            self._renders[key] = (view, img)
            while len(self._renders) > self.settings.render_cache:
                self._renders.popitem(last=False)
        return view, img

    def _check_pixels(self, pixels: np.ndarray, frame: Frame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        if len(px) == 0:
            raise RequestError("no pixels given")
        if len(px) > self.settings.max_points:
            raise RequestError(f"{len(px)} pixels requested; the maximum is {self.settings.max_points} "
                               "(parameter max_points_per_request)")
        w, h = frame.camera.width, frame.camera.height
        finite = np.all(np.isfinite(px), axis=1)
        inside = finite & (px[:, 0] >= 0) & (px[:, 0] <= w - 1) & (px[:, 1] >= 0) & (px[:, 1] <= h - 1)
        codes = np.where(inside, PointCode.OK, PointCode.OUT_OF_IMAGE).astype(np.int64)
        reasons = ["" if ok else (f"pixel ({x:g}, {y:g}) is outside the {w}x{h} image" if fin else
                                  "pixel coordinate is NaN or infinite")
                   for ok, fin, (x, y) in zip(inside, finite, px, strict=True)]
        return px, codes, reasons

    @staticmethod
    def _ask(backend: Backend, qs: list[Question], tm: Timings, t0: float) -> list[Answer]:
        """Run the questions, booking preprocessing (since ``t0``) and inference time."""
        tm.preprocess_s = time.monotonic() - t0
        t1 = time.monotonic()
        ans = backend.answer(qs) if qs else []
        tm.inference_s = time.monotonic() - t1
        tm.add(ans)
        return ans

    @staticmethod
    def _key(task: str, *frames: Frame) -> tuple:
        return (task, *[(f.frame_id, f.stamp_ns) for f in frames])

    # ------------------------------------------------------------------ depth
    def depth(self, frame: Frame, pixels: np.ndarray, depth_type: DepthType = "z_depth") -> DepthResult:
        backend = self.backend("depth")
        tm = Timings()
        t0 = time.monotonic()
        px, codes, reasons = self._check_pixels(pixels, frame)
        view, img = self.unified("depth", frame)
        n = np.zeros((len(px), 2), dtype=np.int64)
        ok = codes == PointCode.OK
        n[ok] = coords.depth_to_prompt(view.to_unified_int(px[ok]), view.width, view.height)
        meta = {"task": "depth", "stamps": (frame.stamp_ns,), "frame_ids": (frame.frame_id,), "views": (view,),
                "depth_type": self.settings.model_depth_type}
        qs = [Question(self._key("depth", frame), (img,), self.settings.prompts.render_depth(*n[i]),
                       self.settings.max_new_tokens["depth"], meta) for i in np.where(ok)[0]]
        ans = self._ask(backend, qs, tm, t0)
        raw = [""] * len(px)
        model_depth = np.full(len(px), np.nan)
        for i, a in zip(np.where(ok)[0], ans, strict=True):
            raw[i] = a.text
            if a.error:
                codes[i], reasons[i] = PointCode.NOT_RUN, a.error
                continue
            parsed = answers.parse_depth(a.text)
            if not parsed.ok or parsed.value is None:
                codes[i], reasons[i] = PointCode.PARSE_FAILURE, parsed.reason
            elif not parsed.value > 0:
                codes[i], reasons[i] = PointCode.INVALID_VALUE, f"non-positive depth {parsed.value:g} m"
            else:
                model_depth[i] = parsed.value
        K = frame.camera.rectified().K
        uv_rect = np.full_like(px, np.nan)
        uv_rect[ok] = view.rectified_pixels(px[ok]) if ok.any() else uv_rect[ok]
        good = codes == PointCode.OK
        depth_out = np.full(len(px), np.nan)
        points = np.full((len(px), 3), np.nan)
        if good.any():
            depth_out[good] = convert_depth(model_depth[good], uv_rect[good], K, self.settings.model_depth_type,
                                            depth_type)
            points[good] = backproject(uv_rect[good], depth_out[good], K, depth_type)
        return DepthResult(depth_out, points, codes, reasons, raw, tm)

    # ------------------------------------------------------------------ pose
    def pose(self, frame_a: Frame, frame_b: Frame, with_distance: bool = True) -> PoseResult:
        backend = self.backend("pose")
        tm = Timings()
        t0 = time.monotonic()
        view_a, img_a = self.unified("pose", frame_a)
        view_b, img_b = self.unified("pose", frame_b)
        meta = {"task": "pose", "stamps": (frame_a.stamp_ns, frame_b.stamp_ns),
                "frame_ids": (frame_a.frame_id, frame_b.frame_id), "views": (view_a, view_b)}
        keys = self.settings.prompts.pose_questions(with_distance)
        qs = [Question(self._key("pose", frame_a, frame_b), (img_a, img_b), text,
                       self.settings.max_new_tokens["pose"], {**meta, "question": k}) for k, text in keys]
        ans = self._ask(backend, qs, tm, t0)
        raw = {k: a.text for (k, _), a in zip(keys, ans, strict=True)}
        reasons: dict[str, str] = {}
        parsers = {"rotation": answers.parse_rotation_angle, "ypr": answers.parse_ypr,
                   "direction": answers.parse_direction, "distance": answers.parse_distance}
        values: dict[str, object] = {}
        for (k, _), a in zip(keys, ans, strict=True):
            if a.error:
                reasons[k] = a.error
                continue
            p = parsers[k](a.text)
            if p.ok:
                values[k] = p.value
            else:
                reasons[k] = p.reason
        ypr = values.get("ypr")
        direction = values.get("direction")
        dist = values.get("distance")
        T = None
        if ypr is not None and direction is not None:
            R = pose.ypr_to_matrix(*ypr)  # type: ignore[misc]
            u = np.asarray(direction, dtype=np.float64)
            t = u * float(dist) if dist is not None else u  # type: ignore[arg-type]
            T = pose.make_T(R, t)
        return PoseResult(T, None if direction is None else np.asarray(direction), None if dist is None else
                          float(dist), ypr, values.get("rotation"), raw, reasons, tm)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ correspondence
    def correspondence(self, frame_a: Frame, frame_b: Frame, pixels_a: np.ndarray) -> CorrResult:
        backend = self.backend("corr")
        tm = Timings()
        t0 = time.monotonic()
        px, codes, reasons = self._check_pixels(pixels_a, frame_a)
        view_a, img_a = self.unified("corr", frame_a)
        view_b, img_b = self.unified("corr", frame_b)
        ok = codes == PointCode.OK
        n = np.zeros((len(px), 2), dtype=np.int64)
        if ok.any():
            n[ok] = coords.corr_to_prompt(view_a.to_unified(px[ok]), view_a.width, view_a.height)
        meta = {"task": "corr", "stamps": (frame_a.stamp_ns, frame_b.stamp_ns),
                "frame_ids": (frame_a.frame_id, frame_b.frame_id), "views": (view_a, view_b)}
        qs = [Question(self._key("corr", frame_a, frame_b), (img_a, img_b), self.settings.prompts.render_corr(*n[i]),
                       self.settings.max_new_tokens["corr"], meta) for i in np.where(ok)[0]]
        ans = self._ask(backend, qs, tm, t0)
        raw = [""] * len(px)
        out = np.full((len(px), 2), np.nan)
        for i, a in zip(np.where(ok)[0], ans, strict=True):
            raw[i] = a.text
            if a.error:
                codes[i], reasons[i] = PointCode.NOT_RUN, a.error
                continue
            p = answers.parse_point(a.text, 0.0, float(coords.CORR_RANGE))
            if not p.ok or p.value is None:
                codes[i], reasons[i] = PointCode.PARSE_FAILURE, p.reason
                continue
            uv_b = view_b.from_unified(coords.corr_from_norm(np.array([p.value]), view_b.width, view_b.height))[0]
            out[i] = uv_b
        return CorrResult(out, codes, reasons, raw, tm)

    # ------------------------------------------------------------------ object / spatial
    def spatial(self, frame: Frame, boxes: np.ndarray, question: str) -> SpatialResult:
        backend = self.backend("object")
        tm = Timings()
        t0 = time.monotonic()
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        w, h = frame.camera.width, frame.camera.height
        for i, (x1, y1, x2, y2) in enumerate(b):
            if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
                raise RequestError(f"region {i} has a NaN or infinite coordinate")
            if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                raise RequestError(f"region {i} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) must satisfy "
                                   f"0 <= x_min < x_max <= {w} and 0 <= y_min < y_max <= {h}")
        view, img = self.unified("object", frame)
        norm = np.zeros((len(b), 4), dtype=np.int64)
        for i, (x1, y1, x2, y2) in enumerate(b):
            corners = view.to_unified(np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]))
            box_u = [corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()]
            norm[i] = coords.box_to_prompt(np.array(box_u), w * view.sx, h * view.sy)[0]
        prompt = self.settings.prompts.render_spatial(question, norm)
        meta = {"task": "object", "stamps": (frame.stamp_ns,), "frame_ids": (frame.frame_id,), "views": (view,),
                "boxes": b}
        q = Question(self._key("object", frame), (img,), prompt, self.settings.max_new_tokens["object"], meta)
        a = self._ask(backend, [q], tm, t0)[0]
        if a.error:
            return SpatialResult(None, prompt, a.text, a.error, tm)
        p = answers.parse_spatial(a.text)
        return SpatialResult(p.value, prompt, a.text, p.reason, tm)
