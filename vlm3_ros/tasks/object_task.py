"""Object-level spatial questions (facebook/VLM3-object, SpatialRGPT-Bench style): regions of one
frame unified to focal 1000 and written as box text in [0, 1000], the free-text answer parsed
into a quantity (and metres), a yes/no, or a clock direction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vlm3_ros.contract import answers
from vlm3_ros.contract.question import Question, QuestionContext
from vlm3_ros.geometry import coords
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.unify import UnifyConfig
from vlm3_ros.tasks.common import Outcome, RequestError, TaskContext, Timings, begin
from vlm3_ros.tasks.spec import TaskSpec

SPEC = TaskSpec(name="object", title="object-level spatial questions about regions",
                checkpoint="facebook/VLM3-object", unify=UnifyConfig(target_focal=1000.0), max_new_tokens=128,
                service="object_query", service_type="ObjectQuery")


@dataclass
class ObjectResult:
    answer: answers.ObjectAnswer | None
    prompt: str
    raw: str
    reason: str
    timings: Timings
    not_run: bool = False          # the backend failed (no answer at all)

    def outcome(self) -> tuple[Outcome, str]:
        a = self.answer
        if self.not_run:
            return Outcome.NOT_RUN, "the backend failed: " + self.reason
        if a is None:
            return Outcome.PARSE_FAILURE, self.reason
        if a.quantity is None and a.yes is None and a.clock is None:
            return Outcome.PARSE_FAILURE, "the answer holds no quantity, yes/no or clock direction; see answer"
        return Outcome.OK, "ok"


def check_boxes(boxes: np.ndarray, frame: Frame) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = frame.camera.width, frame.camera.height
    for i, (x1, y1, x2, y2) in enumerate(b):
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise RequestError(f"region {i} has a NaN or infinite coordinate")
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise RequestError(f"region {i} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) must satisfy "
                               f"0 <= x_min < x_max <= {w} and 0 <= y_min < y_max <= {h}")
    return b


def run(ctx: TaskContext, frame: Frame, boxes: np.ndarray, question: str) -> ObjectResult:
    job = begin(ctx, "object", frame)
    s = job.settings
    b = check_boxes(boxes, frame)
    view, img = ctx.unified("object", frame)
    w, h = frame.camera.width, frame.camera.height
    norm = np.zeros((len(b), 4), dtype=np.int64)
    for i, (x1, y1, x2, y2) in enumerate(b):
        corners = view.to_unified(np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]))
        box_u = [corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()]
        norm[i] = coords.box_to_prompt(np.array(box_u), w * view.sx, h * view.sy)[0]
    prompt = s.prompts.render_object(question, norm)
    context = QuestionContext("object", (frame.stamp_ns,), (frame.frame_id,), (view,),
                              boxes=tuple(tuple(float(v) for v in row) for row in b))  # type: ignore[misc]
    q = Question(job.key, (img,), prompt, s.max_new_tokens["object"], context)
    a = job.ask([q])[0]
    if a.error:
        return ObjectResult(None, prompt, a.text, a.error, job.timings, not_run=True)
    p = answers.parse_object(a.text)
    return ObjectResult(p.value, prompt, a.text, p.reason, job.timings)
