"""Cooperative cancellation of model work: the job that runs carries a token (deadline + cancel
flag) in a context variable; the task layer and the backends call :func:`check` at their batch
boundaries, so work whose caller gave up, or whose deadline passed, or whose node is being
deactivated stops there instead of holding the device for minutes."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

from vlm3_ros.contract.question import BackendError


class Cancelled(BackendError):
    """The work was stopped at a batch boundary (deadline passed, caller gone, node stopping)."""


class CancelToken:
    def __init__(self, deadline: float | None = None, label: str = "") -> None:
        self.deadline = deadline          # time.monotonic() at which the work is stale
        self.label = label
        self.reason = ""
        self._event = threading.Event()

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled(f"{self.label or 'job'} stopped: {self.reason}")
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.cancel("its deadline passed")
            raise Cancelled(f"{self.label or 'job'} stopped: its deadline passed")


T = TypeVar("T")

_current: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar("vlm3_cancel_token", default=None)


@contextmanager
def scoped(var: contextvars.ContextVar[T | None], value: T) -> Iterator[T]:
    """``var`` holds ``value`` inside the block (this job's token, this request's clock)."""
    reset = var.set(value)
    try:
        yield value
    finally:
        var.reset(reset)


def running(token: CancelToken) -> AbstractContextManager[CancelToken]:
    """Make ``token`` the current one while the job runs."""
    return scoped(_current, token)


def current() -> CancelToken | None:
    """The running job's token (pass it on to threads: context variables do not follow them)."""
    return _current.get()


def check() -> None:
    """Raise Cancelled when the current job must stop (no-op outside a job)."""
    token = _current.get()
    if token is not None:
        token.check()
