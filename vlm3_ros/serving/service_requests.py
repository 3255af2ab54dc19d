"""The four services' requests (GetDepth, EstimatePose, FindCorrespondence, ObjectQuery) without ROS:
each is gated (node active, task enabled), its frames resolved, its limits checked and its work run
on the inference worker until its deadline (the caller's ``timeout_s``, 0 = request_timeout_s,
capped by it, counted from when the request arrives); the task's outcome or any error becomes one status. Every reply is
recorded in the request statistics and handed to ``on_reply`` (the node's debug outputs)."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from vlm3_ros.geometry.backproject import DepthType
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.serving.camera_intake import CameraIntake
from vlm3_ros.serving.frame_selection import FrameRef, select_frame
from vlm3_ros.serving.jobs import JobRunner, PointsWork, Work
from vlm3_ros.serving.log import Log
from vlm3_ros.serving.model_host import NOT_ACTIVE
from vlm3_ros.serving.plausibility import text_problem
from vlm3_ros.serving.settings import ServingSettings
from vlm3_ros.serving.stats import RequestStats
from vlm3_ros.serving.status import OUTCOME_STATUS, NotReady, StatusCode, TaskDisabled, status_of
from vlm3_ros.tasks.common import RequestError
from vlm3_ros.tasks.corr_task import CorrResult
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.object_task import ObjectResult
from vlm3_ros.tasks.pose_task import PoseResult

R = TypeVar("R")

# Mirrors GetDepth.Request's Z_DEPTH / RANGE constants.
DEPTH_TYPE_CODES: dict[int, DepthType] = {0: "z_depth", 1: "range"}


@dataclass
class Reply(Generic[R]):
    """One service reply: status, message, the task's result (None when it did not run) and the
    frames the request resolved to (for the response headers)."""

    code: StatusCode
    message: str
    result: R | None = None
    frames: list[Frame] = field(default_factory=list)
    total_s: float = 0.0

    @property
    def success(self) -> bool:
        return self.code == StatusCode.OK


class ServiceRequests:
    """Answers the services' requests from the ``camera``'s frames with ``jobs`` on the models;
    ``keyframe`` gives the odometry keyframe (None without visual odometry)."""

    def __init__(self, camera: CameraIntake, jobs: JobRunner, log: Log,
                 keyframe: Callable[[], Frame | None]) -> None:
        self.camera = camera
        self.jobs = jobs
        self.log = log
        self.keyframe = keyframe
        self.settings = ServingSettings()
        self.stats = RequestStats()
        # Called with (service, reply, inputs) after every reply, e.g. to draw the debug image;
        # its failure is logged and never changes the reply.
        self.on_reply: Callable[[str, Reply, dict[str, np.ndarray]], None] | None = None

    @property
    def max_image_pixels(self) -> int:
        """The largest image a request may carry (an EXPLICIT frame's)."""
        return self.camera.max_image_pixels

    # ================================================================== the services
    def get_depth(self, ref: FrameRef, pixels: np.ndarray, depth_type: int,
                  timeout_s: float = 0.0) -> Reply[DepthResult]:
        px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        with self._replying("get_depth", {"pixels": px}) as reply:
            deadline = self.jobs.deadline(timeout_s)
            frame, kind, key = self._depth_frame(ref, depth_type, reply)
            reply.result = self.jobs.wait(PointsWork("get_depth", key, px,
                                                     lambda pipeline, points: pipeline.depth(frame, points, kind)),
                                         deadline)
        return reply

    def estimate_pose(self, ref_a: FrameRef, ref_b: FrameRef, with_distance: bool,
                      timeout_s: float = 0.0) -> Reply[PoseResult]:
        with self._replying("estimate_pose") as reply:
            deadline = self.jobs.deadline(timeout_s)
            self._check_task("pose")
            fa, fb = self._select(ref_a), self._select(ref_b)
            reply.frames += [fa, fb]
            key = ("pose", id(fa), fa.stamp_ns, id(fb), fb.stamp_ns, with_distance)
            reply.result = self.jobs.wait(Work("estimate_pose", lambda pipeline: pipeline.pose(fa, fb, with_distance),
                                               merge_key=key), deadline)
        return reply

    def find_correspondence(self, ref_a: FrameRef, ref_b: FrameRef, pixels_a: np.ndarray,
                            timeout_s: float = 0.0) -> Reply[CorrResult]:
        with self._replying("find_correspondence") as reply:
            deadline = self.jobs.deadline(timeout_s)
            self._check_task("corr")
            fa, fb = self._select(ref_a), self._select(ref_b)
            reply.frames += [fa, fb]
            px = np.asarray(pixels_a, dtype=np.float64).reshape(-1, 2)
            key = ("corr", id(fa), fa.stamp_ns, id(fb), fb.stamp_ns)
            reply.result = self.jobs.wait(PointsWork("find_correspondence", key, px,
                                                     lambda pipeline, points: pipeline.corr(fa, fb, points)),
                                         deadline)
        return reply

    def object_query(self, ref: FrameRef, boxes: np.ndarray, question: str,
                     labels: Sequence[str] = (), timeout_s: float = 0.0,
                     stop: threading.Event | None = None) -> Reply[ObjectResult]:
        """``labels`` are the regions' names (only logged), checked like the question; ``stop``
        cancels the work (an action goal)."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        with self._replying("object_query", {"boxes": b}) as reply:
            deadline = self.jobs.deadline(timeout_s)
            self._check_task("object")
            s = self.settings
            if len(b) > s.max_regions:
                raise RequestError(f"{len(b)} regions; the maximum is {s.max_regions}")
            if len(question) > s.max_question_chars:
                raise RequestError(f"question has {len(question)} characters; the maximum is "
                                   f"{s.max_question_chars}")
            self._check_text([("question", question), *((f"region {i} label", t) for i, t in enumerate(labels))])
            frame = self._select(ref)
            reply.frames.append(frame)
            reply.result = self.jobs.wait(Work("object_query", lambda pipeline: pipeline.object(frame, b, question)),
                                          deadline, stop)
        return reply

    # ================================================================== every reply
    def _depth_frame(self, ref: FrameRef, depth_type: int,
                     reply: Reply[Any]) -> tuple[Frame, DepthType, tuple[Any, ...]]:
        """A depth request's checks: the task enabled, its frame (added to the reply), the depth
        type; returns the frame, the depth type and the merge key of its points."""
        self._check_task("depth")
        frame = self._select(ref)
        reply.frames.append(frame)
        if depth_type not in DEPTH_TYPE_CODES:
            raise RequestError(f"depth_type {depth_type} must be Z_DEPTH=0 or RANGE=1")
        kind = DEPTH_TYPE_CODES[depth_type]
        # the frame object itself (a camera may reuse a stamp for other pixels); queued jobs hold it
        return frame, kind, ("depth", id(frame), frame.stamp_ns, kind)

    def _check_task(self, task: str) -> None:
        if not self.jobs.active:
            raise NotReady(NOT_ACTIVE)
        if task not in self.settings.tasks:
            raise TaskDisabled(f"task '{task}' is disabled (enabled_tasks={list(self.settings.tasks)})")

    def _check_text(self, fields: Iterable[tuple[str, str]]) -> None:
        """Refuse request text the model must not see (serving.plausibility), counted in the
        requests' diagnostics as ``rejected_text``."""
        for name, text in fields:
            problem = text_problem(name, text)
            if problem:
                self.stats.count("rejected_text")
                raise RequestError(problem)

    def _select(self, ref: FrameRef) -> Frame:
        return select_frame(ref, self.camera, self.keyframe())

    @contextmanager
    def _replying(self, name: str, inputs: dict[str, np.ndarray] | None = None) -> Iterator[Reply[Any]]:
        """The reply of service ``name``: the with-block fills its frames and result; the result's
        outcome, or any error the block raises, becomes its status (no error escapes). Then it is
        recorded, logged when not OK, and handed to ``on_reply`` with ``inputs``."""
        t0 = time.monotonic()
        reply: Reply[Any] = Reply(StatusCode.OK, "ok")
        try:
            yield reply
            outcome, reply.message = reply.result.outcome()
            reply.code = OUTCOME_STATUS[outcome]
        except Exception as e:  # every error becomes a status; none may crash the node
            known = status_of(e)
            if known is not None:
                reply.code, reply.message = known, str(e)
            else:
                reply.code, reply.message = StatusCode.BACKEND_ERROR, f"internal error {type(e).__name__}: {e}"
                self.log.error(f"{name}: {reply.message}\n{traceback.format_exc()}")
        reply.total_s = time.monotonic() - t0
        self.stats.record(name, reply.code, reply.total_s, reply.result)
        if reply.code != StatusCode.OK:
            self.log.info(f"{name}: status {int(reply.code)}: {reply.message}", throttle_s=1.0, key=f"status-{name}")
        if self.on_reply is not None:
            try:
                self.on_reply(name, reply, inputs or {})
            except Exception as e:  # a debug output must never cost a reply
                self.log.warning(f"after {name}: {type(e).__name__}: {e}", throttle_s=10.0, key="on-reply")
