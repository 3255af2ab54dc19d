"""One inference worker thread with a bounded queue and a per-job deadline over the whole job.

Why: the model is one device resource and must not run in a ROS callback that has to keep up
with the camera. Service callbacks submit jobs here and wait on a future; when the queue is full
they get :class:`BackendBusy` at once (the node answers BUSY), a job whose deadline passed while it
waited is dropped with :class:`DeadlineExceeded`, and a running job stops at its next batch
boundary once its deadline passes or its token is cancelled (caller gone, node stopping): the
device is never held for work nobody waits for. Jobs submitted with a
:class:`~vlm3_ros.serving.merging.Mergeable` run together with the queued jobs of the same key
(:mod:`vlm3_ros.serving.merging`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from vlm3_ros.contract.question import BackendError
from vlm3_ros.runtime.cancel import CancelToken, running
from vlm3_ros.serving.merging import Mergeable, MergedToken

LOG = logging.getLogger(__name__)


class BackendBusy(BackendError):
    """The inference queue is full; retry later."""


class DeadlineExceeded(BackendError):
    """The work was dropped because its deadline passed before it ran."""


class JobFuture(Future):
    """A queued job's future: ``token`` stops the job (caller gone, node stopping), ``queue_s`` is
    how long it waited in the queue before it ran."""

    def __init__(self, token: CancelToken) -> None:
        super().__init__()
        self.token = token
        self.queue_s = 0.0


@dataclass(order=True)
class _Job:
    seq: int
    fn: Callable[[], Any] = field(compare=False)
    future: JobFuture = field(compare=False)
    deadline: float = field(compare=False)
    submitted: float = field(compare=False)
    label: str = field(compare=False, default="")
    token: CancelToken = field(compare=False, default_factory=CancelToken)
    mergeable: Mergeable | None = field(compare=False, default=None)


class InferenceWorker:
    def __init__(self, max_queue: int = 8, name: str = "vlm3-inference") -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self._q: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._seq = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._running: list[_Job] = []
        self.stats = {"submitted": 0, "completed": 0, "failed": 0, "busy": 0, "expired": 0, "cancelled": 0,
                      "merged": 0}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any], timeout_s: float, label: str = "",
               mergeable: Mergeable | None = None) -> JobFuture:
        """Queue ``fn``; raise BackendBusy when full. ``timeout_s`` bounds the whole job: dropped if
        not started by then, stopped at its next batch boundary after it. ``future.token`` cancels it.
        With ``mergeable``, queued jobs of the same key run with it in one ``run_many`` call."""
        if self._stopped.is_set():
            raise BackendBusy("the inference worker is stopped")
        now = time.monotonic()
        fut = JobFuture(CancelToken(now + timeout_s, label))
        with self._lock:
            self._seq += 1
            job = _Job(self._seq, fn, fut, now + timeout_s, now, label, fut.token, mergeable)
        try:
            self._q.put_nowait(job)
        except queue.Full:
            self.stats["busy"] += 1
            raise BackendBusy(f"inference queue full ({self._q.maxsize} jobs waiting); retry later") from None
        self.stats["submitted"] += 1
        return fut

    def queued(self) -> int:
        return self._q.qsize()

    def _admit(self, job: _Job) -> bool:
        """Mark ``job`` running; False (and its future answered) when cancelled or expired."""
        if not job.future.set_running_or_notify_cancel():
            return False
        waited = time.monotonic() - job.submitted
        if time.monotonic() > job.deadline:
            self.stats["expired"] += 1
            job.future.set_exception(DeadlineExceeded(
                f"dropped {job.label or 'job'} after waiting {waited:.2f}s in the queue (deadline passed)"))
            return False
        job.future.queue_s = waited
        return True

    def _take_same_key(self, job: _Job) -> list[_Job]:
        """The queued jobs that may run with ``job`` (same merge key, within its size limit), taken
        out of the queue in order. Uses queue.Queue's documented lock and deque (``mutex``,
        ``queue``, ``not_full``) so a waiting submit sees the freed room."""
        m = job.mergeable
        if m is None:
            return []
        taken: list[_Job] = []
        size = m.size
        with self._q.mutex:
            keep = []
            for other in self._q.queue:
                om = other.mergeable if other is not None else None
                if om is not None and om.key == m.key and size + om.size <= m.limit:
                    taken.append(other)
                    size += om.size
                else:
                    keep.append(other)
            if taken:
                self._q.queue.clear()
                self._q.queue.extend(keep)
                self._q.not_full.notify_all()
        return taken

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            if not self._admit(job):
                continue
            group = [job, *(j for j in self._take_same_key(job) if self._admit(j))]
            self._running = group
            token = job.token if len(group) == 1 else MergedToken([j.token for j in group])
            try:
                with running(token):
                    if len(group) == 1:
                        results = [job.fn()]
                    else:
                        assert job.mergeable is not None
                        results = job.mergeable.run_many([j.mergeable.payload for j in group if j.mergeable])
                        if len(results) != len(group):
                            raise BackendError(f"merged run returned {len(results)} results for {len(group)} jobs")
                        self.stats["merged"] += len(group) - 1
            except BaseException as e:  # the futures carry it to the callers; the worker lives on
                for j in group:
                    self.stats["cancelled" if token.cancelled else "failed"] += 1
                    j.future.set_exception(e)
            else:
                for j, r in zip(group, results, strict=True):
                    self.stats["completed"] += 1
                    j.future.set_result(r)
            finally:
                self._running = []

    def stop(self, timeout: float = 60.0, reason: str = "") -> bool:
        """Fail what is still queued, stop the running job at its next batch boundary (with
        ``reason``; without one it may finish), end the thread. True when the thread ended, so the
        models it used may be released."""
        self._stopped.set()
        if reason:
            for job in list(self._running):
                job.token.cancel(reason)
        while True:
            try:
                job = self._q.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(BackendBusy("the inference worker stopped before this job ran"))
        self._q.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
