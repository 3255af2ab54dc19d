"""Long requests as action goals, without ROS: depth at many pixels run in chunks on the one
inference worker (merged with the services' work on the same frame), each chunk reported as it
is done; an object question that its caller can cancel. A goal stops at the next batch boundary
when its caller cancels it (``stop`` set) or its deadline passes, and its reply keeps what was
answered before."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence

import numpy as np

from vlm3_ros.runtime.cancel import Cancelled
from vlm3_ros.serving.frame_selection import FrameRef
from vlm3_ros.serving.jobs import GoalCancelled, PointsWork
from vlm3_ros.serving.service_requests import Reply, ServiceRequests
from vlm3_ros.serving.worker import DeadlineExceeded
from vlm3_ros.tasks.common import PointCode, RequestError, Timings
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.object_task import ObjectResult

# Points per chunk of a depth goal: feedback and the cancel check come after each chunk (the
# backend itself checks at every batch boundary inside it).
DEPTH_CHUNK_POINTS = 32
# Most pixels one depth goal may hold (the most max_points_per_request may be set to).
MAX_GOAL_POINTS = 4096


def join_depth(parts: Sequence[DepthResult], n: int, reason: str) -> DepthResult:
    """The results of a goal's chunks, in order, as one result of ``n`` points; the points no
    chunk answered are NOT_RUN with ``reason``. Timings are summed over the chunks."""
    depth, points = np.full(n, np.nan), np.full((n, 3), np.nan)
    codes = np.full(n, int(PointCode.NOT_RUN), dtype=np.int64)
    reasons, raw = [reason] * n, [""] * n
    timings = Timings()
    i = 0
    for p in parts:
        k = len(p.depth)
        depth[i:i + k], points[i:i + k], codes[i:i + k] = p.depth, p.points, p.codes
        reasons[i:i + k], raw[i:i + k] = p.reasons, p.raw
        for f in dataclasses.fields(Timings):
            setattr(timings, f.name, getattr(timings, f.name) + getattr(p.timings, f.name))
        i += k
    return DepthResult(depth, points, codes, reasons, raw, timings)


class GoalRequests(ServiceRequests):
    """The services' requests (:class:`ServiceRequests`) and the actions' goals on the same
    frames, worker, merging, statistics and limits."""

    def depth_goal(self, ref: FrameRef, pixels: np.ndarray, depth_type: int, timeout_s: float,
                   stop: threading.Event, on_chunk: Callable[[int, DepthResult], None],
                   chunk_points: int = DEPTH_CHUNK_POINTS) -> Reply[DepthResult]:
        """Depth at ``pixels`` in chunks of ``chunk_points``; ``on_chunk(first index, result)``
        after each. A stop or the deadline after some chunks: the reply holds their points (the
        rest NOT_RUN) with the status of the stop (TIMEOUT) and a message that counts them."""
        px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        with self._replying("get_depth_goal", {"pixels": px}) as reply:
            deadline = self.jobs.deadline(timeout_s)
            frame, kind, key = self._depth_frame(ref, depth_type, reply)
            if len(px) > MAX_GOAL_POINTS:
                raise RequestError(f"{len(px)} pixels; the maximum for a goal is {MAX_GOAL_POINTS}")
            parts: list[DepthResult] = []
            try:
                for start in range(0, max(len(px), 1), chunk_points):
                    if stop.is_set():
                        raise GoalCancelled("get_depth_goal was cancelled by its caller")
                    work = PointsWork("get_depth", key, px[start:start + chunk_points],
                                      lambda pipeline, points: pipeline.depth(frame, points, kind))
                    parts.append(self.jobs.wait(work, deadline, stop))
                    on_chunk(start, parts[-1])
            except (Cancelled, DeadlineExceeded) as e:
                if not parts:
                    raise
                reply.result = join_depth(parts, len(px), f"not run: {e}")
                done = sum(len(p.depth) for p in parts)
                raise type(e)(f"{e}; {done} of {len(px)} point(s) were run before (see point_status)") from None
            reply.result = join_depth(parts, len(px), "not run")
        return reply

    def object_goal(self, ref: FrameRef, boxes: np.ndarray, question: str, labels: Sequence[str],
                    timeout_s: float, stop: threading.Event) -> Reply[ObjectResult]:
        """An object question that ``stop`` cancels (at the generation's next batch boundary)."""
        return self.object_query(ref, boxes, question, labels, timeout_s, stop)
