"""Measurements repeated in separate processes: a machine's speed drifts between runs (other
processes, clocks, caches), so one run's figure is not a result. A script runs its own worker
(``python bench/<script>.py ... <worker flag>``) once per run; each worker prints one line
``RESULT <json>``; the runs of a configuration are summarised by their spread and the median run,
the one a results file quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

RESULT_PREFIX = "RESULT "


def result_line(result: dict[str, Any]) -> str:
    """What a worker prints for its parent to read."""
    return RESULT_PREFIX + json.dumps(result)


@dataclass(frozen=True)
class WorkerRun:
    """One worker process: its result (None when it failed) and what it printed."""

    result: dict[str, Any] | None
    returncode: int
    stdout: str
    stderr: str

    def failure(self) -> str:
        """The end of the worker's output, to show where it failed."""
        return f"{self.stdout[-2000:]}\n{self.stderr[-4000:]}\n(exit {self.returncode})"


def run_worker(args: Sequence[str], timeout_s: float | None = None) -> WorkerRun:
    """Run ``python <args>`` in a fresh process and read its ``RESULT`` line."""
    try:
        r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        def text(x: Any) -> str:
            return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")

        return WorkerRun(None, -1, text(e.stdout), text(e.stderr) + f"\ntimed out after {timeout_s} s")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    result = json.loads(lines[-1][len(RESULT_PREFIX):]) if lines and r.returncode == 0 else None
    return WorkerRun(result, r.returncode, r.stdout, r.stderr)


def median_index(values: Sequence[float]) -> int:
    """The index of the median value (of an even count, the lower of the middle two: always one
    of the runs, never an average of two)."""
    if not values:
        raise ValueError("no values")
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(values) - 1) // 2]


def spread(values: Sequence[float]) -> dict[str, Any]:
    """min / median / max of the runs' values, which run is the median one (1-based, in the order
    the runs ran) and max/min."""
    i = median_index(values)
    lo, hi = min(values), max(values)
    return {"runs": len(values), "min": lo, "median": values[i], "max": hi, "median_run": i + 1,
            "max_over_min": hi / lo if lo > 0 else None, "values": list(values)}


def median_run(results: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """The median run's result (by ``key``), with the spread of ``key`` over all runs added as
    ``<key>_spread``."""
    values = [float(r[key]) for r in results]
    s = spread(values)
    return {**results[s["median_run"] - 1], f"{key}_spread": s}
