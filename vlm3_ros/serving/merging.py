"""Request merging: requests that wait together for the one inference worker and ask about the
same frame(s) run as one pipeline call.

Why: the engine pays the image once per frame and then steps all questions on it together; on a
GPU a decode step costs about the same for 4 rows as for 64 (it is bound by reading the
weights). Eight clients asking 4 depth points each about the newest frame would otherwise run
eight prefixes' worth of batches of 4 one after another; merged, their 32 questions share one
prefix and one set of decode steps.

What merges (``ServingSettings.merge_requests``): depth requests on the same frame with the same
depth type, correspondence requests on the same frame pair (pixels concatenated, results split
back per request, up to ``max_points_per_request`` in all), and identical pose requests (run
once, each caller gets its own copy). A merged run's timings are the merged run's; the caller's
queue time is its own. Cancellation: the merged run stops only when every participant has
given up (:class:`MergedToken`).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlm3_ros.runtime.cancel import Cancelled, CancelToken


@dataclass(frozen=True)
class Mergeable:
    """How a queued job may run together with others of the same ``key``: ``run_many`` takes the
    payloads of all of them (in queue order) and returns one result per payload; ``size`` counts
    toward ``limit`` (points per request; the merged call must stay a valid request)."""

    key: Hashable
    payload: Any
    run_many: Callable[[list[Any]], list[Any]]
    size: int = 1
    limit: int = 1 << 30


class MergedToken(CancelToken):
    """The cancel token of a merged run: stopped only when every participant is (caller gone,
    deadline passed, node stopping); one impatient caller must not cost the others their answer."""

    def __init__(self, tokens: Sequence[CancelToken]) -> None:
        deadlines = [t.deadline for t in tokens]
        super().__init__(None if any(d is None for d in deadlines) else max(d for d in deadlines if d is not None),
                         label=" + ".join(t.label or "job" for t in tokens))
        self.tokens = list(tokens)

    @staticmethod
    def _stopped(t: CancelToken) -> bool:
        return t.cancelled or (t.deadline is not None and time.monotonic() > t.deadline)

    @property
    def cancelled(self) -> bool:
        return super().cancelled or all(self._stopped(t) for t in self.tokens)

    def check(self) -> None:
        if super().cancelled:
            raise Cancelled(f"{self.label} stopped: {self.reason}")
        if all(self._stopped(t) for t in self.tokens):
            reasons = sorted({t.reason or "its deadline passed" for t in self.tokens})
            raise Cancelled(f"{self.label} stopped: {'; '.join(reasons)}")


def split_points(result: Any, sizes: Sequence[int]) -> list[Any]:
    """Split a per-point task result (DepthResult, CorrResult: a dataclass whose arrays and lists
    hold one entry per point) into one result per request of ``sizes`` points; every other field
    (timings) is copied into each."""
    total = int(sum(sizes))
    out = []
    start = 0
    for n in sizes:
        values = {}
        for f in dataclasses.fields(result):
            v = getattr(result, f.name)
            if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == total:
                values[f.name] = v[start:start + n].copy()
            elif isinstance(v, list) and len(v) == total:
                values[f.name] = v[start:start + n]
            else:
                values[f.name] = copy.deepcopy(v)
        out.append(type(result)(**values))
        start += n
    return out


def points_many(run: Callable[[np.ndarray], Any]) -> Callable[[list[np.ndarray]], list[Any]]:
    """``run_many`` for a per-point task: one call on all requests' pixels, split back."""

    def run_many(payloads: list[np.ndarray]) -> list[Any]:
        sizes = [len(p) for p in payloads]
        merged = run(np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in payloads]))
        return split_points(merged, sizes)

    return run_many


def same_many(run: Callable[[], Any]) -> Callable[[list[Any]], list[Any]]:
    """``run_many`` for identical requests: run once, each caller gets its own copy."""

    def run_many(payloads: list[Any]) -> list[Any]:
        result = run()
        return [result] + [copy.deepcopy(result) for _ in payloads[1:]]

    return run_many
