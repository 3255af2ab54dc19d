"""Relative camera pose (facebook/VLM3-pose): two images unified to focal 750, the contract's four
questions answered separately, parsed into yaw/pitch/roll, a unit direction and a distance, and
composed into the pose of camera B in camera A (optical frames)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlm3_ros.contract import answers
from vlm3_ros.contract.question import Question, QuestionContext
from vlm3_ros.geometry import pose
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.unify import UnifyConfig
from vlm3_ros.tasks.common import Outcome, TaskContext, Timings, begin
from vlm3_ros.tasks.spec import TaskSpec

SPEC = TaskSpec(name="pose", title="relative camera pose between two frames", checkpoint="facebook/VLM3-pose",
                unify=UnifyConfig(target_focal=750.0), max_new_tokens=96, service="estimate_pose",
                service_type="EstimatePose", images=2)

PARSERS = {"rotation": answers.parse_rotation_angle, "ypr": answers.parse_ypr,
           "direction": answers.parse_direction, "distance": answers.parse_distance}
ORDER = ("rotation", "ypr", "direction", "distance")


@dataclass
class PoseResult:
    T_a_b: np.ndarray | None       # pose of camera B in camera A (4x4); None when not parsed
    direction: np.ndarray | None   # unit translation in A's optical frame
    distance_m: float | None
    ypr_deg: tuple[float, float, float] | None
    rotation_angle_deg: float | None
    raw: dict[str, str]            # question key -> reply, in ORDER
    reasons: dict[str, str]        # question key -> why it gave nothing
    timings: Timings
    not_run: tuple[str, ...] = ()  # question keys the backend failed on (no answer at all)

    @property
    def ok(self) -> bool:
        return self.T_a_b is not None

    def outcome(self) -> tuple[Outcome, str]:
        problems = "; ".join(f"{k}: {v}" for k, v in self.reasons.items())
        if self.T_a_b is None and self.not_run and len(self.not_run) == len(self.raw):
            return Outcome.NOT_RUN, "the backend failed: " + problems
        if self.T_a_b is None:
            return Outcome.PARSE_FAILURE, "no pose: " + problems
        if problems:
            return Outcome.PARTIAL, "pose from yaw/pitch/roll + direction; " + problems
        return Outcome.OK, "ok"


def run(ctx: TaskContext, frame_a: Frame, frame_b: Frame, with_distance: bool = True) -> PoseResult:
    job = begin(ctx, "pose", frame_a, frame_b)
    s = job.settings
    view_a, img_a = ctx.unified("pose", frame_a)
    view_b, img_b = ctx.unified("pose", frame_b)
    keys = s.prompts.pose_questions(with_distance)
    key = job.key
    qs = [Question(key, (img_a, img_b), text, s.max_new_tokens["pose"],
                   QuestionContext("pose", (frame_a.stamp_ns, frame_b.stamp_ns), (frame_a.frame_id, frame_b.frame_id),
                                   (view_a, view_b), pose_question=k))
          for k, text in keys]
    ans = job.ask(qs)
    raw = {k: a.text for (k, _), a in zip(keys, ans, strict=True)}
    reasons: dict[str, str] = {}
    values: dict[str, object] = {}
    not_run = tuple(k for (k, _), a in zip(keys, ans, strict=True) if a.error)
    for (k, _), a in zip(keys, ans, strict=True):
        if a.error:
            reasons[k] = a.error
            continue
        p = PARSERS[k](a.text)
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
    return PoseResult(T, None if direction is None else np.asarray(direction),
                      None if dist is None else float(dist),  # type: ignore[arg-type]
                      ypr, values.get("rotation"), raw, reasons, job.timings, not_run)  # type: ignore[arg-type]
