"""TEST DOUBLE backends for fault injection: scripted replies, raised errors, delays."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from vlm3_ros.contract.question import Answer, Question
from vlm3_ros.runtime import cancel


class ScriptedBackend:
    """TEST DOUBLE. ``reply(question, index)`` gives each answer's text, or raises to inject a fault."""

    def __init__(self, reply: Callable[[Question, int], str], delay_s: float = 0.0) -> None:
        self.reply = reply
        self.delay_s = delay_s
        self.name = "scripted(TEST DOUBLE)"
        self.calls = 0
        self.closed = False
        self._lock = threading.Lock()

    def answer(self, questions: Sequence[Question]) -> list[Answer]:
        with self._lock:
            self.calls += 1
        out = []
        for i, q in enumerate(questions):
            cancel.check()  # like a real backend's batch boundary
            if self.delay_s:
                time.sleep(self.delay_s)
            out.append(Answer(self.reply(q, i)))
        return out

    def close(self) -> None:
        self.closed = True
