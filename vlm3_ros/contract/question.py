"""What every inference backend takes (a :class:`Question`) and returns (an :class:`Answer`).

A question is one user turn: unified images in prompt order, then text. Tasks build questions;
backends answer them. The typed :class:`QuestionContext` says what a question is about (task,
frames, views); real models never read it, test doubles that answer from recorded ground truth
do, and logs may.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vlm3_ros.geometry.unify import UnifiedView


class BackendError(RuntimeError):
    """The backend failed for a reason the caller should report (message says what to fix)."""


@dataclass(frozen=True)
class QuestionContext:
    """Where a question comes from. ``views`` are the unified views of ``images`` in order."""

    task: str
    stamps: tuple[int, ...]
    frame_ids: tuple[str, ...]
    views: tuple[UnifiedView, ...]
    model_depth_type: str = "range"     # depth: what the checkpoint's number means
    pose_question: str = ""             # pose: rotation | ypr | direction | distance
    boxes: tuple[tuple[float, float, float, float], ...] = ()   # object: regions, original pixels


@dataclass(frozen=True)
class Question:
    """One generation. Questions with the same ``images_key`` (task + frame stamps) show the same
    images, so the engine shares their image prefix."""

    images_key: Hashable
    images: tuple[np.ndarray, ...]
    text: str
    max_new_tokens: int = 64
    context: QuestionContext | None = None
    # contract.answers.ANSWER_END_RULES: a local engine may stop once the reply holds the whole
    # answer under this rule ("" = run to end of turn or max_new_tokens)
    answer_end: str = ""


@dataclass(frozen=True)
class Answer:
    text: str
    prompt_tokens: int = 0
    generated_tokens: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


class Backend(Protocol):
    """Answers questions in order. Implementations must be safe to call from one thread at a time;
    the caller (the node's inference worker) serialises calls."""

    name: str

    def answer(self, questions: Sequence[Question]) -> list[Answer]: ...

    def close(self) -> None: ...

    # Optional: ``model_image_size(width, height) -> (width, height)``, the size the backend's image
    # processor resizes an image of that size to (a local checkpoint's patch grid). With it the
    # pipeline can render once, straight at that size (PipelineSettings.resample_once).
