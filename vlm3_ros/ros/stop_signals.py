"""A clean stop on Ctrl-C, SIGINT and SIGTERM: the signal is recorded, never raised.

rclpy's own handlers (installed by ``rclpy.init``) shut the context down, which ends
``executor.spin()``, and then call the Python handler that was there before them. Python's default
for SIGINT raises ``KeyboardInterrupt`` at whatever line the main thread is on: inside
``executor.shutdown()``, or in the middle of releasing the models, with a traceback and exit code
-2 (what ``ros2 launch`` reports as ``process has died``). Installed before ``rclpy.init``,
:class:`StopSignals` is that previous handler: it only records the signal, so the node's ``main``
runs its shutdown to the end and returns 0. A second signal (a terminal's Ctrl-C reaches the node
once directly and once forwarded by ``ros2 launch``, and launch sends SIGTERM after its timeout)
is recorded too and changes nothing; once the node has stopped, both are ignored until the
process has exited. :func:`shut_down` is that shutdown.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import rclpy
from rclpy.executors import Executor

if TYPE_CHECKING:
    from vlm3_ros.ros.perception_node import PerceptionNode

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Record SIGINT/SIGTERM instead of raising; :meth:`restore` puts the previous handlers back."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.first_at: float | None = None   # time.monotonic() of the first signal
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        """Install the handlers (main thread only, as Python requires); returns self."""
        for sig in STOP_SIGNALS:
            previous = signal.signal(sig, self._on_signal)
            self._previous.setdefault(sig, previous)
        return self

    def ignore(self) -> None:
        """Once stopped: ignore both signals until the process ends. (Python's exit resets a
        Python handler to the default, which a late signal would end the process with; an
        ignored signal stays ignored.)"""
        for sig in STOP_SIGNALS:
            previous = signal.signal(sig, signal.SIG_IGN)
            self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def describe(self) -> str:
        """What was received, e.g. ``SIGINT`` or ``SIGINT, SIGINT, SIGTERM``."""
        return ", ".join(self.received)

    def since_first(self) -> float:
        """Seconds since the first signal (0 when none came)."""
        return 0.0 if self.first_at is None else time.monotonic() - self.first_at

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.received.append(signal.Signals(signum).name)
        self.event.set()


def shut_down(node: PerceptionNode, executor: Executor, stop: StopSignals) -> None:
    """Stop serving, let the running job finish or stop at its next batch (queued ones answer
    BUSY), release the models, then end the callbacks and the context. Further signals meanwhile
    are only recorded (StopSignals), so this always runs to the end and main returns 0."""
    # Python logging, not the node's logger: the signal already shut the context down, and the
    # node's logger would also try (and fail) to publish on /rosout.
    log = logging.getLogger(node.get_fully_qualified_name())
    node.core.log.sink = log  # what a job or handler still logs after the signal goes there too
    if stop.requested:
        log.info(f"stopping ({stop.describe()}): the running job finishes or stops at its next batch, "
                 "then the models are released")
    node.core.active = False
    node.core.release_models()
    executor.shutdown()
    node.core.release_models()  # anything a callback still loading at the signal loaded meanwhile
    node.destroy_node()
    rclpy.try_shutdown()
    # Stopped: from here the process only exits, and Python's exit puts the default handlers back,
    # so a signal still on its way (launch forwards the terminal's Ctrl-C; a second Ctrl-C) would
    # end it with -2 instead of 0. Nothing is left to stop: ignored.
    stop.ignore()
    if stop.requested:
        log.info(f"stopped cleanly {stop.since_first():.1f} s after {stop.describe()}")
