"""Where the time of one request goes, stage by stage: the backends and the task layer book
seconds to named stages of the running request through a context variable (like
:mod:`vlm3_ros.runtime.cancel`), so nothing below the serving layer needs a handle on the request.

Stages, in order (docs/engine.md has the table of what runs where):
  queue    waiting for the inference worker
  unify    undistort + focal unification + the questions' text (the task layer, CPU)
  image    the checkpoint's image processing: grid resize, normalise, patchify (device or PIL)
  prefill  vision encode + prefill of the shared image prefix (the model)
  decode   the questions' suffixes and generation, batched (the model)
  parse    answer parsing + geometry (back-projection, pose maths)
  convert  result -> ROS response message (the node)
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from vlm3_ros.runtime.cancel import scoped

STAGES = ("queue", "unify", "image", "prefill", "decode", "parse", "convert")


class StageClock:
    """Seconds per stage for one request (stages booked twice add up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; one of {STAGES}")
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def get(self, stage: str) -> float:
        return self.seconds.get(stage, 0.0)


_current: contextvars.ContextVar[StageClock | None] = contextvars.ContextVar("vlm3_stage_clock", default=None)


def collecting(clock: StageClock) -> AbstractContextManager[StageClock]:
    """Book the stages of the code inside to ``clock``."""
    return scoped(_current, clock)


@contextmanager
def stage(name: str, sync: Any = None) -> Iterator[None]:
    """Time the block as ``name`` on the current clock (a no-op without one). ``sync``: a
    callable run before reading the clock at the end, e.g. ``torch.cuda.synchronize`` so a GPU
    stage's asynchronous kernels are counted in it and not in the next one."""
    clock = _current.get()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if clock is not None:
            if sync is not None:
                sync()
            clock.add(name, time.perf_counter() - t0)
