"""Logging for the serving core with per-key rate limits, into any sink with info/warning/error
(Python's logging.Logger, or the node's rclpy logger: the node passes its own)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol


class LogSink(Protocol):
    def info(self, msg: str) -> object: ...

    def warning(self, msg: str) -> object: ...

    def error(self, msg: str) -> object: ...


class Log:
    """``warning(msg, throttle_s, key)`` logs at most once per ``throttle_s`` per ``key`` (default:
    the message's first 48 characters), so a flood of one problem does not drown the others."""

    def __init__(self, sink: LogSink | None = None) -> None:
        self.sink: LogSink = sink if sink is not None else logging.getLogger("vlm3_ros.serving")
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def _due(self, msg: str, throttle_s: float, key: str | None) -> bool:
        if throttle_s <= 0:
            return True
        k = key or msg[:48]
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(k, -1e18) < throttle_s:
                return False
            self._last[k] = now
        return True

    def info(self, msg: str, throttle_s: float = 0.0, key: str | None = None) -> None:
        if self._due(msg, throttle_s, key):
            self.sink.info(msg)

    def warning(self, msg: str, throttle_s: float = 0.0, key: str | None = None) -> None:
        if self._due(msg, throttle_s, key):
            self.sink.warning(msg)

    def error(self, msg: str, throttle_s: float = 0.0, key: str | None = None) -> None:
        if self._due(msg, throttle_s, key):
            self.sink.error(msg)
