"""Work for the models, as the services and the producers hand it to the one inference worker: a
request's work waited for until its deadline (the caller's timeout_s, capped by request_timeout_s)
and stopped at its next batch boundary when its caller stops waiting, or a producer's work queued
without waiting. Work that may merge with queued work of the same key
(serving.merging) says how: per point (depth, correspondence) or identical (pose)."""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

import numpy as np

from vlm3_ros.runtime.cancel import Cancelled
from vlm3_ros.serving.log import Log
from vlm3_ros.serving.merging import Mergeable, points_many, same_many
from vlm3_ros.serving.model_host import ModelHost
from vlm3_ros.serving.settings import ServingSettings
from vlm3_ros.serving.status import NotReady
from vlm3_ros.serving.worker import BackendBusy, DeadlineExceeded
from vlm3_ros.tasks.common import RequestError
from vlm3_ros.tasks.pipeline import Pipeline

R = TypeVar("R")

# How often a goal's waiter looks at its cancel flag.
STOP_POLL_S = 0.02


class GoalCancelled(Cancelled):
    """An action goal was cancelled by its caller; its work stopped at the next batch boundary."""


@dataclass(frozen=True)
class Deadline:
    """When a request's caller stops waiting (``at``, time.monotonic()) and what set it (``said``,
    for the TIMEOUT message)."""

    at: float
    said: str

    @staticmethod
    def of(timeout_s: float, request_timeout_s: float) -> Deadline:
        """From now: the caller's ``timeout_s`` (0 = the node's ``request_timeout_s``), capped by
        ``request_timeout_s``; a negative or NaN timeout_s is an invalid request."""
        if not math.isfinite(timeout_s) or timeout_s < 0:
            raise RequestError(f"timeout_s={timeout_s:g} must be 0 (the node's request_timeout_s="
                               f"{request_timeout_s:g}) or a positive number of seconds")
        now = time.monotonic()
        if timeout_s == 0 or timeout_s >= request_timeout_s:
            return Deadline(now + request_timeout_s, f"request_timeout_s={request_timeout_s:g}")
        return Deadline(now + timeout_s, f"the caller's timeout_s={timeout_s:g}")

    def left(self) -> float:
        """Seconds until the deadline (0 once passed)."""
        return max(0.0, self.at - time.monotonic())


@dataclass(frozen=True)
class Work(Generic[R]):
    """``run(pipeline)``, named ``label``. With a ``merge_key``, identical work queued together
    (same key) runs once and each caller gets its own copy."""

    label: str
    run: Callable[[Pipeline], R]
    merge_key: Hashable | None = None

    def alone(self, pipeline: Pipeline) -> Callable[[], R]:
        return partial(self.run, pipeline)

    def mergeable(self, pipeline: Pipeline) -> Mergeable | None:
        if self.merge_key is None:
            return None
        return Mergeable(self.merge_key, None, same_many(partial(self.run, pipeline)), 1, pipeline.settings.max_points)


@dataclass(frozen=True)
class PointsWork(Generic[R]):
    """``run(pipeline, pixels)`` on a request's ``pixels``, named ``label``. Work of the same
    ``merge_key`` queued together runs as one call on all their pixels (up to the pipeline's
    max_points), split back per request."""

    label: str
    merge_key: Hashable
    pixels: np.ndarray
    run: Callable[[Pipeline, np.ndarray], R]

    def alone(self, pipeline: Pipeline) -> Callable[[], R]:
        return partial(self.run, pipeline, self.pixels)

    def mergeable(self, pipeline: Pipeline) -> Mergeable | None:
        if len(self.pixels) < 1:  # an empty request runs alone and gets its own error
            return None
        run_many = points_many(partial(self.run, pipeline))
        return Mergeable(self.merge_key, self.pixels, run_many, len(self.pixels), pipeline.settings.max_points)


class JobRunner:
    """Hands work to ``models``' worker: ``wait`` for a request, ``in_background`` for a producer.
    ``counters`` is the core's shared dict (a producer's skipped ticks)."""

    def __init__(self, models: ModelHost, log: Log, counters: dict[str, float]) -> None:
        self.models = models
        self.log = log
        self.counters = counters
        self.settings = ServingSettings()

    @property
    def active(self) -> bool:
        return self.models.active

    def deadline(self, timeout_s: float = 0.0) -> Deadline:
        """A request's deadline from now: its caller's ``timeout_s`` capped by request_timeout_s."""
        return Deadline.of(timeout_s, self.settings.request_timeout_s)

    def wait(self, work: Work[R] | PointsWork[R], deadline: Deadline | None = None,
             stop: threading.Event | None = None) -> R:
        """Run ``work`` on the worker and wait until ``deadline`` (default: request_timeout_s from
        now) or until ``stop`` is set (an action goal cancelled: :class:`GoalCancelled`); then its
        work stops at its next batch boundary, unless it was merged with work whose caller still
        waits. With merge_requests on, it may run together with queued work of the same key. Its
        result carries its queue time."""
        deadline = deadline or self.deadline()
        pipeline, worker = self.models.serving()
        merge = work.mergeable(pipeline) if self.settings.merge_requests else None
        fut = worker.submit(work.alone(pipeline), deadline.left(), work.label, merge)
        try:
            if stop is not None:
                self._wait_or_stop(fut, deadline, stop)
                if stop.is_set() and not fut.done():
                    fut.cancel()
                    fut.token.cancel("its caller cancelled the goal")
                    raise GoalCancelled(f"{work.label} was cancelled by its caller; the work was stopped at its "
                                        "next batch boundary")
            result = fut.result(timeout=deadline.left())
        except concurrent.futures.TimeoutError:
            fut.cancel()
            # the job's own deadline stops it at its next batch boundary; make sure it does
            fut.token.cancel(f"its caller stopped waiting after {deadline.said}")
            raise DeadlineExceeded(f"{work.label} did not finish within {deadline.said}; the work was "
                                   "stopped at its next batch boundary") from None
        except Cancelled as e:
            if not self.models.active:
                raise NotReady(f"the node was deactivated while {work.label} ran: {e}") from None
            raise
        timings = getattr(result, "timings", None)
        if timings is not None:
            timings.queue_s = fut.queue_s
        return result

    @staticmethod
    def _wait_or_stop(fut: concurrent.futures.Future, deadline: Deadline, stop: threading.Event) -> None:
        """Until ``fut`` is done, ``stop`` is set or ``deadline`` passes."""
        while not fut.done() and not stop.is_set() and deadline.left() > 0:
            concurrent.futures.wait([fut], timeout=min(STOP_POLL_S, deadline.left()))

    def in_background(self, work: Work[R], timeout_s: float, busy: threading.Event, skipped: str,
                      on_result: Callable[[R], None]) -> None:
        """Queue a producer's ``work`` without waiting; one at a time per producer (``busy``); a
        full queue or a failure skips this tick (counted in ``counters[skipped]``) instead of
        piling up."""
        try:
            pipeline, worker = self.models.serving()
            fut = worker.submit(work.alone(pipeline), timeout_s, work.label)
        except (BackendBusy, NotReady):
            self.counters[skipped] += 1
            return
        busy.set()

        def done(f: concurrent.futures.Future) -> None:
            busy.clear()
            try:
                r = f.result()
            except Exception as e:
                self.counters[skipped] += 1
                self.log.warning(f"{work.label} skipped: {e}", throttle_s=5.0, key=f"skip-{work.label}")
                return
            on_result(r)

        fut.add_done_callback(done)
