"""What the task modules share: per-point status codes, request errors, timings, the pixel
checks and the one place a batch of questions is handed to a backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np

from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.contract.question import Answer, Backend, Question
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.unify import UnifiedView
from vlm3_ros.runtime import cancel, timing


class PointCode(IntEnum):
    """Mirrors vlm3_ros/msg/PointStatus."""

    OK = 0
    OUT_OF_IMAGE = 1
    PARSE_FAILURE = 2
    INVALID_VALUE = 3
    NOT_RUN = 4


class Outcome(IntEnum):
    """How a whole request turned out, in task terms (the serving layer maps it to a status)."""

    OK = 0
    PARTIAL = 1
    PARSE_FAILURE = 2
    INVALID_REQUEST = 3
    NOT_RUN = 4


class RequestError(ValueError):
    """The request itself is invalid (the node answers INVALID_REQUEST with this message)."""


@dataclass
class Timings:
    """One request's clock (vlm3_ros.runtime.timing names the stages). preprocess_s: from the
    task's start to the model call (unify + questions); inference_s: the backend call, of which
    image_s, prefill_s and decode_s are the local engine's stages (a remote server's are its own);
    parse_s: answers -> result; queue_s and convert_s are filled by the serving layer and the node."""

    preprocess_s: float = 0.0
    inference_s: float = 0.0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    queue_s: float = 0.0
    image_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    parse_s: float = 0.0
    convert_s: float = 0.0
    answered_at: float = 0.0    # time.monotonic() when the last backend call returned

    def stages(self) -> dict[str, float]:
        """Seconds per stage (contract.timing.STAGES order); unify is preprocess_s."""
        return {"queue": self.queue_s, "unify": self.preprocess_s, "image": self.image_s, "prefill": self.prefill_s,
                "decode": self.decode_s, "parse": self.parse_s, "convert": self.convert_s}

    def finish(self) -> None:
        """Book parse_s: from the last answer to now (the task built its result)."""
        if self.answered_at:
            self.parse_s = time.monotonic() - self.answered_at

    def add(self, answers: list[Answer]) -> None:
        self.prompt_tokens += sum(a.prompt_tokens for a in answers)
        self.generated_tokens += sum(a.generated_tokens for a in answers)


class TaskSettings(Protocol):
    """What a task reads of the pipeline's settings (vlm3_ros.tasks.pipeline.PipelineSettings)."""

    @property
    def prompts(self) -> PromptSet: ...

    @property
    def max_new_tokens(self) -> dict[str, int]: ...

    @property
    def model_depth_type(self) -> str: ...

    @property
    def max_points(self) -> int: ...


class TaskContext(Protocol):
    """What a task needs from the pipeline that runs it."""

    @property
    def settings(self) -> TaskSettings: ...

    def backend(self, task: str) -> Backend: ...

    def unified(self, task: str, frame: Frame) -> tuple[UnifiedView, np.ndarray]: ...


@dataclass
class TaskRun:
    """One run of a task: its backend, the pipeline settings, the clock of its timings and the
    key of the images its questions show."""

    backend: Backend
    settings: TaskSettings
    timings: Timings
    t0: float
    key: Hashable

    def ask(self, questions: list[Question]) -> list[Answer]:
        return ask(self.backend, questions, self.timings, self.t0)


def begin(ctx: TaskContext, task: str, *frames: Frame) -> TaskRun:
    return TaskRun(ctx.backend(task), ctx.settings, Timings(), time.monotonic(), images_key(task, *frames))


def images_key(task: str, *frames: Frame) -> Hashable:
    """Questions with equal keys show the same images (the engine shares their prefix)."""
    return (task, *[(f.frame_id, f.stamp_ns) for f in frames])


def ask(backend: Backend, questions: list[Question], tm: Timings, t0: float) -> list[Answer]:
    """Run the questions, booking preprocessing (since ``t0``) and inference time."""
    tm.preprocess_s = time.monotonic() - t0
    cancel.check()  # a job whose caller gave up stops before the model runs
    t1 = time.monotonic()
    with timing.collecting(timing.StageClock()) as clock:
        answers = backend.answer(questions) if questions else []
    tm.answered_at = time.monotonic()
    tm.inference_s = tm.answered_at - t1
    tm.image_s += clock.get("image")
    tm.prefill_s += clock.get("prefill")
    tm.decode_s += clock.get("decode")
    tm.add(answers)
    return answers


def check_pixels(pixels: np.ndarray, frame: Frame, max_points: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(pixels (N, 2), codes, reasons): OUT_OF_IMAGE for NaN/inf or outside pixels; raises
    RequestError for none or too many."""
    px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    if len(px) == 0:
        raise RequestError("no pixels given")
    if len(px) > max_points:
        raise RequestError(f"{len(px)} pixels requested; the maximum is {max_points} "
                           "(parameter max_points_per_request)")
    w, h = frame.camera.width, frame.camera.height
    finite = np.all(np.isfinite(px), axis=1)
    inside = finite & (px[:, 0] >= 0) & (px[:, 0] <= w - 1) & (px[:, 1] >= 0) & (px[:, 1] <= h - 1)
    codes = np.where(inside, PointCode.OK, PointCode.OUT_OF_IMAGE).astype(np.int64)
    reasons = ["" if ok else (f"pixel ({x:g}, {y:g}) is outside the {w}x{h} image" if fin else
                              "pixel coordinate is NaN or infinite")
               for ok, fin, (x, y) in zip(inside, finite, px, strict=True)]
    return px, codes, reasons


def read_point_answers(answers: list[Answer], asked: np.ndarray, codes: np.ndarray, reasons: list[str],
                       parse: Callable[[str], tuple[object | None, PointCode, str]]) -> tuple[list[str], list[object]]:
    """The answers of the points ``asked`` (indices into the request): raw texts, parsed values
    (None where not OK); a backend error marks the point NOT_RUN, a parse failure its code."""
    raw = [""] * len(codes)
    values: list[object] = [None] * len(codes)
    for i, a in zip(asked, answers, strict=True):
        raw[i] = a.text
        if a.error:
            codes[i], reasons[i] = PointCode.NOT_RUN, a.error
            continue
        value, code, reason = parse(a.text)
        if code != PointCode.OK:
            codes[i], reasons[i] = code, reason
        else:
            values[i] = value
    return raw, values


class PointOutcome:
    """For results with one code per queried point: their outcome is rolled up from the codes."""

    codes: np.ndarray
    reasons: list[str]

    def outcome(self) -> tuple[Outcome, str]:
        return point_outcome(self.codes, self.reasons)


# With no point answered, each failure's outcome and how it is told, in the order that breaks a tie
# of counts: what the caller can fix first (pixels), then the backend, then the model's answers.
_FAILURE_OUTCOMES: tuple[tuple[tuple[PointCode, ...], Outcome, str], ...] = (
    ((PointCode.OUT_OF_IMAGE,), Outcome.INVALID_REQUEST, "outside the image (or NaN/infinite)"),
    ((PointCode.NOT_RUN,), Outcome.NOT_RUN, "not run (the backend failed)"),
    ((PointCode.PARSE_FAILURE, PointCode.INVALID_VALUE), Outcome.PARSE_FAILURE, "without a usable answer"),
)


def point_outcome(codes: np.ndarray, reasons: list[str] | None = None) -> tuple[Outcome, str]:
    """Roll per-point codes up into one outcome and a message that says where to look: OK when
    every point succeeded, PARTIAL when some did, and with none the outcome of the dominant
    failure (the most points; a tie goes to the earlier of _FAILURE_OUTCOMES)."""
    ok = int(np.sum(codes == PointCode.OK))
    if ok == len(codes):
        return Outcome.OK, f"{ok} point(s) answered"
    if ok > 0:
        return Outcome.PARTIAL, f"{ok} of {len(codes)} point(s) answered; see point_status"
    counts = [(int(np.isin(codes, list(group)).sum()), outcome, said) for group, outcome, said in _FAILURE_OUTCOMES]
    n, dominant, _ = max(counts, key=lambda c: c[0])  # max keeps the first of equal counts
    parts = ", ".join(f"{k} {said}" for k, _, said in counts if k)
    if dominant == Outcome.NOT_RUN and n == len(codes):
        why = reasons[int(np.argmax(codes == PointCode.NOT_RUN))] if reasons else "no reason given"
        return Outcome.NOT_RUN, f"the backend failed for every point: {why}"
    if dominant == Outcome.PARSE_FAILURE and int(np.sum(codes == PointCode.PARSE_FAILURE)) == len(codes):
        return Outcome.PARSE_FAILURE, f"no answer could be parsed ({n} point(s)); see raw_answers"
    if dominant == Outcome.INVALID_REQUEST and n == len(codes):
        return Outcome.INVALID_REQUEST, "every pixel is outside the image; see point_status"
    return dominant, f"no point succeeded: {parts}; see point_status"
