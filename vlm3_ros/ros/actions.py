"""The perception actions, for long work a caller may cancel: GetDepth (depth at many pixels, with
feedback after each chunk of points) and ObjectQuery, at ``~/get_depth`` and ``~/object_query``
(next to the services of the same names). Goals run on the serving core's one inference worker
with the services' merging and limits (serving.goals); a cancel or the goal's deadline stops the
work at its next batch boundary. Nothing is decided here: goal <-> core, as ros.services does for
the services."""

from __future__ import annotations

import threading
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from vlm3_ros.action import GetDepth, ObjectQuery
from vlm3_ros.ros import services as srv
from vlm3_ros.serving.goals import GoalRequests
from vlm3_ros.serving.status import StatusCode
from vlm3_ros.tasks.depth_task import DepthResult


class PerceptionActions:
    """The action servers of ``node`` on the core's ``goals``; a goal's cancel sets its stop flag."""

    def __init__(self, node: Node, goals: GoalRequests) -> None:
        self.goals = goals
        self._stops: dict[bytes, threading.Event] = {}
        self._lock = threading.Lock()
        group = ReentrantCallbackGroup()
        common: dict[str, Any] = {"goal_callback": lambda _goal: GoalResponse.ACCEPT,
                                  "cancel_callback": self._cancel, "callback_group": group}
        self.servers = [ActionServer(node, GetDepth, "~/get_depth", self._depth, **common),
                        ActionServer(node, ObjectQuery, "~/object_query", self._object, **common)]

    def destroy(self) -> None:
        for s in self.servers:
            s.destroy()

    def _cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        with self._lock:
            stop = self._stops.get(bytes(handle.goal_id.uuid))
        if stop is not None:
            stop.set()
        return CancelResponse.ACCEPT

    def _stop_of(self, handle: ServerGoalHandle) -> threading.Event:
        stop = threading.Event()
        with self._lock:
            self._stops[bytes(handle.goal_id.uuid)] = stop
        if handle.is_cancel_requested:
            stop.set()
        return stop

    def _end(self, handle: ServerGoalHandle, stop: threading.Event, code: int) -> None:
        """CANCELED after a cancel, SUCCEEDED when the work ran (OK, PARTIAL), else ABORTED."""
        with self._lock:
            self._stops.pop(bytes(handle.goal_id.uuid), None)
        if stop.is_set() and handle.is_cancel_requested:
            handle.canceled()
        elif code in (StatusCode.OK, StatusCode.PARTIAL):
            handle.succeed()
        else:
            handle.abort()

    def _depth(self, handle: ServerGoalHandle) -> GetDepth.Result:
        goal: GetDepth.Goal = handle.request
        stop = self._stop_of(handle)
        total = len(goal.pixels)
        done = 0

        def on_chunk(start: int, r: DepthResult) -> None:
            nonlocal done
            done += len(r.depth)
            fb = GetDepth.Feedback(points_done=done, points_total=total,
                                   indices=[start + i for i in range(len(r.depth))])
            srv.fill_depth(fb, r)
            handle.publish_feedback(fb)

        ref = srv.frame_ref(goal.frame, self.goals.max_image_pixels)
        reply = self.goals.depth_goal(ref, srv.pixels_of(goal.pixels), int(goal.depth_type), float(goal.timeout_s),
                                      stop, on_chunk)
        result = GetDepth.Result()
        srv.finish(self.goals, result, reply, lambda r: srv.fill_depth(result, r))
        self._end(handle, stop, reply.code)
        return result

    def _object(self, handle: ServerGoalHandle) -> ObjectQuery.Result:
        goal: ObjectQuery.Goal = handle.request
        stop = self._stop_of(handle)
        ref = srv.frame_ref(goal.frame, self.goals.max_image_pixels)
        reply = self.goals.object_goal(ref, srv.boxes_of(goal.regions), goal.question,
                                       [r.label for r in goal.regions], float(goal.timeout_s), stop)
        result = ObjectQuery.Result()
        srv.finish(self.goals, result, reply, lambda r: srv.fill_object(result, r))
        self._end(handle, stop, reply.code)
        return result

