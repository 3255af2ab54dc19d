"""A node that records messages on topics from a background executor thread (tests, demo, bench)."""

from __future__ import annotations

import threading
import time
from typing import Any

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy


class TopicRecorder:
    def __init__(self, name: str = "vlm3_recorder") -> None:
        self.node = Node(name)
        self.messages: dict[str, list[tuple[float, Any]]] = {}
        self._lock = threading.Lock()
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._stop = threading.Event()

    def subscribe(self, msg_type: Any, topic: str, reliable: bool = True, depth: int = 100) -> None:
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.messages[topic] = []

        def cb(msg: Any, topic: str = topic) -> None:
            with self._lock:
                self.messages[topic].append((time.monotonic(), msg))

        self.node.create_subscription(msg_type, topic, cb, qos)

    def start(self) -> TopicRecorder:
        self._thread.start()
        return self

    def _spin(self) -> None:
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.05)

    def get(self, topic: str) -> list[Any]:
        with self._lock:
            return [m for _, m in self.messages.get(topic, [])]

    def wait_for(self, topic: str, count: int, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.get(topic)
            if len(msgs) >= count:
                return msgs
            time.sleep(0.05)
        return self.get(topic)

    def wait_quiet(self, quiet_s: float, timeout: float) -> bool:
        """Wait until no message has arrived for ``quiet_s`` (True) or ``timeout`` passed (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                last = max((t for msgs in self.messages.values() for t, _ in msgs[-1:]), default=0.0)
            if time.monotonic() - last >= quiet_s:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop recording and destroy the node; what was recorded stays readable. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._executor.shutdown()
        self.node.destroy_node()
