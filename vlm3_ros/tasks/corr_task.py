"""Pixel correspondence (facebook/VLM3-corr): both images unified to a 1024-px long edge, pixels of
A written in [0, 1000], the answered point of B mapped back to B's original pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlm3_ros.contract import answers
from vlm3_ros.contract.question import Question, QuestionContext
from vlm3_ros.geometry import coords
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.unify import UnifyConfig
from vlm3_ros.tasks.common import PointCode, PointOutcome, TaskContext, Timings, begin, check_pixels, read_point_answers
from vlm3_ros.tasks.spec import TaskSpec

SPEC = TaskSpec(name="corr", title="pixel correspondence between two frames", checkpoint="facebook/VLM3-corr",
                unify=UnifyConfig(target_focal=None, long_edge=1024), max_new_tokens=64,
                service="find_correspondence", service_type="FindCorrespondence", images=2, answer_end="point")


@dataclass
class CorrResult(PointOutcome):
    pixels_b: np.ndarray           # (N, 2) original pixels of B, NaN where code != OK
    codes: np.ndarray
    reasons: list[str]
    raw: list[str]
    timings: Timings


def run(ctx: TaskContext, frame_a: Frame, frame_b: Frame, pixels_a: np.ndarray) -> CorrResult:
    job = begin(ctx, "corr", frame_a, frame_b)
    s = job.settings
    px, codes, reasons = check_pixels(pixels_a, frame_a, s.max_points)
    view_a, img_a = ctx.unified("corr", frame_a)
    view_b, img_b = ctx.unified("corr", frame_b)
    ok = codes == PointCode.OK
    asked = np.where(ok)[0]
    n = np.zeros((len(px), 2), dtype=np.int64)
    if ok.any():
        n[ok] = coords.corr_to_prompt(view_a.to_unified(px[ok]), view_a.width, view_a.height)
    context = QuestionContext("corr", (frame_a.stamp_ns, frame_b.stamp_ns), (frame_a.frame_id, frame_b.frame_id),
                              (view_a, view_b))
    key = job.key
    ans = job.ask([Question(key, (img_a, img_b), s.prompts.render_corr(*n[i]), s.max_new_tokens["corr"], context,
                            answer_end=SPEC.answer_end)
                   for i in asked])

    def parse(text: str) -> tuple[np.ndarray | None, PointCode, str]:
        p = answers.parse_point(text, 0.0, float(coords.CORR_RANGE))
        if not p.ok or p.value is None:
            return None, PointCode.PARSE_FAILURE, p.reason
        return view_b.from_unified(coords.corr_from_norm(np.array([p.value]), view_b.width, view_b.height))[0], \
            PointCode.OK, ""

    raw, values = read_point_answers(ans, asked, codes, reasons, parse)
    out = np.full((len(px), 2), np.nan)
    for i, v in enumerate(values):
        if v is not None:
            out[i] = v
    return CorrResult(out, codes, reasons, raw, job.timings)
