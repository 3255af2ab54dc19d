"""What the services answered lately: replies per status, latency percentiles per service and per
stage (vlm3_ros.runtime.timing), and the share of model answers that did not parse (over a
sliding window), for diagnostics."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from vlm3_ros.runtime.timing import STAGES
from vlm3_ros.serving.status import StatusCode
from vlm3_ros.tasks.common import PointCode

# A parse-failure share above this over at least MIN_ANSWERS answers is reported as a warning.
PARSE_WARN_SHARE = 0.5
MIN_ANSWERS = 8


class RequestStats:
    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self._latency: dict[str, deque[float]] = {}
        self._stages: dict[str, deque[float]] = {}
        self._answers: deque[bool] = deque(maxlen=window)   # True = parsed
        self.window = window

    def record(self, name: str, code: StatusCode, total_s: float, result: Any) -> None:
        """One reply; ``result`` (or None) tells how many model answers parsed."""
        parsed: list[bool] = []
        codes = getattr(result, "codes", None)
        if codes is not None:
            answered = np.isin(codes, (PointCode.OK, PointCode.PARSE_FAILURE, PointCode.INVALID_VALUE))
            parsed = [bool(c != PointCode.PARSE_FAILURE) for c in np.asarray(codes)[answered]]
        elif result is not None and code in (StatusCode.OK, StatusCode.PARTIAL, StatusCode.PARSE_FAILURE):
            parsed = [code != StatusCode.PARSE_FAILURE]
        with self._lock:
            key = f"replies_{code.name.lower()}"
            self.counts[key] = self.counts.get(key, 0) + 1
            self._latency.setdefault(name, deque(maxlen=self.window)).append(total_s)
            self._answers.extend(parsed)
        timings = getattr(result, "timings", None)
        if timings is not None:
            for stage, seconds in timings.stages().items():
                if stage != "convert":   # booked by the node after the reply (record_stage)
                    self.record_stage(stage, seconds)

    def count(self, key: str) -> None:
        """One more of ``key`` (rejected input, e.g. ``rejected_text``), reported with the replies."""
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def record_stage(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._stages.setdefault(stage, deque(maxlen=self.window)).append(seconds)

    def parse_failure_share(self) -> tuple[float | None, int]:
        """(share of recent model answers that did not parse, how many answers); None if none."""
        with self._lock:
            n = len(self._answers)
            return ((n - sum(self._answers)) / n if n else None), n

    def values(self) -> dict[str, Any]:
        share, n = self.parse_failure_share()
        with self._lock:
            out: dict[str, Any] = dict(sorted(self.counts.items()))
            for name, lat in self._latency.items():
                a = np.array(lat) * 1000.0
                out[f"{name}_p50_ms"] = round(float(np.percentile(a, 50)), 1)
                out[f"{name}_p95_ms"] = round(float(np.percentile(a, 95)), 1)
            for stage in STAGES:
                if stage in self._stages:
                    a = np.array(self._stages[stage]) * 1000.0
                    out[f"stage_{stage}_p50_ms"] = round(float(np.percentile(a, 50)), 2)
                    out[f"stage_{stage}_p95_ms"] = round(float(np.percentile(a, 95)), 2)
        out["parse_failure_share"] = "n/a" if share is None else round(share, 3)
        out["recent_answers"] = n
        return out
