"""Depth at pixels (facebook/VLM3-depth): pixels -> prompt integers in [0, 2000) of the image
unified to focal 1000 -> metres -> z-depth or range and 3D points in the camera optical frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlm3_ros.contract import answers
from vlm3_ros.contract.question import Question, QuestionContext
from vlm3_ros.geometry import coords
from vlm3_ros.geometry.backproject import DepthType, backproject, convert_depth
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.unify import UnifyConfig
from vlm3_ros.tasks.common import PointCode, PointOutcome, TaskContext, Timings, begin, check_pixels, read_point_answers
from vlm3_ros.tasks.spec import TaskSpec

SPEC = TaskSpec(name="depth", title="metric depth at pixels", checkpoint="facebook/VLM3-depth",
                unify=UnifyConfig(target_focal=1000.0), max_new_tokens=256, service="get_depth",
                service_type="GetDepth", answer_end="depth")


@dataclass
class DepthResult(PointOutcome):
    depth: np.ndarray              # (N,) in the requested depth type, NaN where code != OK
    points: np.ndarray             # (N, 3) optical frame, NaN where code != OK
    codes: np.ndarray              # (N,) PointCode
    reasons: list[str]
    raw: list[str]
    timings: Timings


def parse(text: str) -> tuple[float | None, PointCode, str]:
    parsed = answers.parse_depth(text)
    if not parsed.ok or parsed.value is None:
        return None, PointCode.PARSE_FAILURE, parsed.reason
    if not parsed.value > 0:
        return None, PointCode.INVALID_VALUE, f"non-positive depth {parsed.value:g} m"
    return parsed.value, PointCode.OK, ""


def run(ctx: TaskContext, frame: Frame, pixels: np.ndarray, depth_type: DepthType = "z_depth") -> DepthResult:
    job = begin(ctx, "depth", frame)
    s = job.settings
    px, codes, reasons = check_pixels(pixels, frame, s.max_points)
    view, img = ctx.unified("depth", frame)
    ok = codes == PointCode.OK
    asked = np.where(ok)[0]
    n = np.zeros((len(px), 2), dtype=np.int64)
    n[ok] = coords.depth_to_prompt(view.to_unified_int(px[ok]), view.width, view.height)
    context = QuestionContext("depth", (frame.stamp_ns,), (frame.frame_id,), (view,),
                              model_depth_type=s.model_depth_type)
    key = job.key
    ans = job.ask([Question(key, (img,), s.prompts.render_depth(*n[i]), s.max_new_tokens["depth"], context,
                            answer_end=SPEC.answer_end)
                   for i in asked])
    raw, values = read_point_answers(ans, asked, codes, reasons, parse)
    K = frame.camera.rectified().K
    good = codes == PointCode.OK
    depth_out = np.full(len(px), np.nan)
    points = np.full((len(px), 3), np.nan)
    if good.any():
        uv_rect = view.rectified_pixels(px[good])
        model_depth = np.array([values[i] for i in np.where(good)[0]], dtype=np.float64)
        depth_out[good] = convert_depth(model_depth, uv_rect, K, s.model_depth_type, depth_type)
        points[good] = backproject(uv_rect, depth_out[good], K, depth_type)
    return DepthResult(depth_out, points, codes, reasons, raw, job.timings)
