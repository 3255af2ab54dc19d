"""What every backend takes and returns."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class BackendError(RuntimeError):
    """The backend failed for a reason the caller should report (message says what to fix)."""


class BackendBusy(BackendError):
    """The backend's queue is full; retry later."""


class DeadlineExceeded(BackendError):
    """The work was dropped because its deadline passed before it ran."""


@dataclass(frozen=True)
class Question:
    """One generation: images (unified RGB uint8, in prompt order) then text, one user turn.

    ``images_key`` identifies the image set (e.g. task + frame stamps); questions with the same
    key share the image prefix in the engine. ``meta`` carries what a test double may need
    (never read by real backends).
    """

    images_key: Hashable
    images: tuple[np.ndarray, ...]
    text: str
    max_new_tokens: int = 64
    meta: dict = field(default_factory=dict, compare=False, hash=False)


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
