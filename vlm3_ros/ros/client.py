"""Call the perception node's services from the command line (``vlm3-ros call``), with readable
output; also the Python client the tests and the demo use."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from vlm3_ros.action import GetDepth as GetDepthAction
from vlm3_ros.action import ObjectQuery as ObjectQueryAction
from vlm3_ros.msg import FrameSelector, Pixel, Region, Status
from vlm3_ros.ros import conversions as cv
from vlm3_ros.ros.services import SERVICES
from vlm3_ros.srv import EstimatePose, FindCorrespondence, GetDepth, ObjectQuery
from vlm3_ros.tasks.task_registry import TASKS

# Both sides of the services keep a deep, reliable history: a burst of requests (or of replies to
# many concurrent clients) is queued, not dropped (docs/reliability.md).
SERVICE_QOS = QoSProfile(depth=256, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)

# How much longer than a request's deadline (its timeout_s) the client waits for the reply: the
# node answers TIMEOUT at the deadline, and that answer must arrive before a second try is sent.
REPLY_GRACE_S = 2.0

STATUS_NAMES = {getattr(Status, n): n for n in dir(Status) if n.isupper() and isinstance(getattr(Status, n), int)}


class PerceptionClient:
    """Service clients for one perception node (default /vlm3_perception): ``clients[task]`` for
    every task of the registry, also as attributes (``.depth``, ``.pose``, ``.corr``, ``.object``)."""

    def __init__(self, node: Node, target: str = "/vlm3_perception") -> None:
        self.node = node
        self.target = target.rstrip("/")
        self.clients = {name: node.create_client(SERVICES[name][0], f"{self.target}/{spec.service}",
                                                 qos_profile=SERVICE_QOS)
                        for name, spec in TASKS.items()}
        for name, c in self.clients.items():
            setattr(self, name, c)
        self.reset = node.create_client(Trigger, f"{self.target}/reset_odometry", qos_profile=SERVICE_QOS)
        self.retried = 0
        self._actions: dict[str, ActionClient] = {}

    def action(self, kind: str) -> ActionClient:
        """The action client of ``kind`` ('depth' or 'object', made on first use)."""
        if kind not in self._actions:
            types = {"depth": (GetDepthAction, "get_depth"), "object": (ObjectQueryAction, "object_query")}
            action_type, name = types[kind]
            self._actions[kind] = ActionClient(self.node, action_type, f"{self.target}/{name}")
        return self._actions[kind]

    def send_goal(self, kind: str, goal: Any, timeout: float = 120.0, on_feedback: Callable[[Any], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> tuple[int, Any]:
        """Send ``goal`` to the ``kind`` action and wait for its result: a goal whose timeout_s is
        0 gets ``timeout`` as its deadline. ``on_feedback`` gets each feedback message; once
        ``cancel()`` is true the goal is cancelled (the node stops it at its next batch boundary).
        Returns (action_msgs GoalStatus code, result)."""
        problem = nul_problem(goal)
        if problem:
            raise ValueError(problem)
        client = self.action(kind)
        if not client.wait_for_server(timeout_sec=10.0):
            raise TimeoutError(f"action {self.target} {kind} not available")
        if goal.timeout_s == 0:
            goal.timeout_s = float(timeout)
        ex = SingleThreadedExecutor(context=self.node.context)
        ex.add_node(self.node)
        try:
            sent = client.send_goal_async(goal, feedback_callback=(lambda m: on_feedback(m.feedback))
                                          if on_feedback else None)
            ex.spin_until_future_complete(sent, timeout_sec=10.0)
            handle = sent.result()
            if handle is None or not handle.accepted:
                raise RuntimeError(f"the {kind} goal was not accepted")
            result = handle.get_result_async()
            deadline = time.monotonic() + goal.timeout_s + REPLY_GRACE_S
            cancelled = False
            while not result.done() and time.monotonic() < deadline:
                ex.spin_once(timeout_sec=0.05)
                if cancel is not None and not cancelled and cancel():
                    handle.cancel_goal_async()
                    cancelled = True
            if not result.done():
                raise TimeoutError(f"no result of the {kind} goal within {goal.timeout_s + REPLY_GRACE_S:g}s")
            r = result.result()
            return int(r.status), r.result
        finally:
            ex.remove_node(self.node)
            ex.shutdown()

    def wait(self, timeout: float = 30.0) -> bool:
        return all(c.wait_for_service(timeout_sec=timeout) for c in self.clients.values())

    def call(self, client: Any, request: Any, timeout: float = 120.0, retries: int = 1) -> Any:
        """Call with the deadline ``timeout`` (seconds): a perception request whose ``timeout_s``
        is 0 gets it, so the node stops the work when this caller stops waiting, and the reply
        (TIMEOUT at the latest) is waited for REPLY_GRACE_S longer. A request with a NUL in a
        string field is refused before sending (ValueError). Then see :meth:`_call`."""
        problem = nul_problem(request)
        if problem:
            raise ValueError(problem)
        wait = timeout
        if getattr(request, "timeout_s", None) is not None:
            if request.timeout_s == 0:
                request.timeout_s = float(timeout)
            wait = request.timeout_s + REPLY_GRACE_S
        return self._call(client, request, wait, retries)

    def _call(self, client: Any, request: Any, timeout: float, retries: int) -> Any:
        """Call and wait up to ``timeout``; a reply that does not come is asked for again
        ``retries`` times. Each try is a new request with its own sequence number: rclpy matches a
        reply to its request by that number, and a late reply to an abandoned try is dropped, so
        the caller gets exactly one reply. The services only read, so a second try is safe (with a
        LATEST selector it may see a newer frame: use BY_STAMP when that matters). A private
        executor per call lets several threads each drive their own client node at once."""
        for attempt in range(retries + 1):
            fut = client.call_async(request)
            ex = SingleThreadedExecutor(context=self.node.context)
            ex.add_node(self.node)
            try:
                ex.spin_until_future_complete(fut, timeout_sec=timeout)
            finally:
                ex.remove_node(self.node)
                ex.shutdown()
            if fut.done():
                return fut.result()
            client.remove_pending_request(fut)  # a late reply to this try is dropped
            if attempt < retries:
                self.retried += 1
        raise TimeoutError(f"no answer from {client.srv_name} within {timeout}s ({retries + 1} tries)")


def nul_problem(value: Any, where: str = "") -> str | None:
    """Where a request (a ROS message, searched through its nested messages and sequences) holds a
    NUL in a string: ROS 2's transport cuts a string at its first NUL, so the node would answer a
    shorter question than was asked. None when there is none."""
    if isinstance(value, str):
        if "\0" not in value:
            return None
        return (f"{where} holds a NUL character at position {value.index(chr(0))}: ROS 2 cuts a string there, so "
                f"the node would read {value.split(chr(0))[0]!r}; remove it")
    if isinstance(value, (list, tuple)):  # numeric sequences are arrays, not lists
        return next((p for i, item in enumerate(value) if (p := nul_problem(item, f"{where}[{i}]"))), None)
    fields = getattr(value, "get_fields_and_field_types", None)
    if fields is None:
        return None
    return next((p for name in fields() if (p := nul_problem(getattr(value, name), f"{where}.{name}".lstrip(".")))),
                None)


def selector(spec: str) -> FrameSelector:
    """'latest' | 'keyframe' | a stamp in seconds."""
    sel = FrameSelector()
    if spec == "latest":
        sel.mode = FrameSelector.LATEST
    elif spec == "keyframe":
        sel.mode = FrameSelector.KEYFRAME
    else:
        sel.mode = FrameSelector.BY_STAMP
        sel.stamp = cv.to_time(round(float(spec) * 1e9))
    return sel


def _pixels(values: list[str]) -> list[Pixel]:
    out = []
    for v in values:
        x, y = v.split(",")
        out.append(Pixel(x=float(x), y=float(y)))
    return out


def status_line(resp: Any) -> str:
    return f"{'OK' if resp.success else 'FAILED'} [{STATUS_NAMES.get(resp.status.code, resp.status.code)}] " \
           f"{resp.message} ({resp.timing.total_s * 1000:.0f} ms)"


def describe(kind: str, resp: Any) -> str:
    lines = [status_line(resp)]
    if kind == "depth":
        for i, (d, p, s) in enumerate(zip(resp.depth, resp.points, resp.point_status, strict=True)):
            val = f"{d:.3f} m  xyz=({p.x:+.3f}, {p.y:+.3f}, {p.z:+.3f})" if not math.isnan(d) else "-"
            lines.append(f"  [{i}] {val}  {s.reason}")
    elif kind == "pose":
        t, q = resp.transform_a_b.translation, resp.transform_a_b.rotation
        lines.append(f"  yaw/pitch/roll = {resp.yaw_deg:.1f}/{resp.pitch_deg:.1f}/{resp.roll_deg:.1f} deg, "
                     f"angle {resp.rotation_angle_deg:.1f} deg, distance {resp.distance_m:.3f} m")
        lines.append(f"  T_a_b: t=({t.x:+.3f}, {t.y:+.3f}, {t.z:+.3f}) "
                     f"q=({q.x:+.4f}, {q.y:+.4f}, {q.z:+.4f}, {q.w:+.4f})")
    elif kind == "corr":
        for i, (p, s) in enumerate(zip(resp.pixels_b, resp.point_status, strict=True)):
            lines.append(f"  [{i}] -> ({p.x:.1f}, {p.y:.1f})  {s.reason}")
    elif kind == "object":
        lines.append(f"  prompt: {resp.prompt}")
        lines.append(f"  answer: {resp.answer!r}")
        if resp.has_quantity:
            lines.append(f"  quantity: {resp.quantity:g} {resp.unit} = {resp.quantity_m:.3f} m")
        if resp.has_yes_no:
            lines.append(f"  yes/no: {'yes' if resp.yes else 'no'}")
    if kind != "object" and getattr(resp, "raw_answers", None):
        lines.append(f"  raw answers: {list(resp.raw_answers)[:4]}")
    return "\n".join(lines)


GOAL_STATUS_NAMES = {getattr(GoalStatus, n): n[len("STATUS_"):] for n in dir(GoalStatus) if n.startswith("STATUS_")}


def _goal(client: PerceptionClient, kind: str, goal: Any, timeout: float) -> Any:
    """Send a goal, print its progress and how it ended; its result (a response's fields)."""
    def progress(fb: Any) -> None:
        if kind == "depth":
            print(f"  ... {fb.points_done}/{fb.points_total} points", flush=True)

    status, result = client.send_goal(kind, goal, timeout, on_feedback=progress)
    print(f"goal {GOAL_STATUS_NAMES.get(status, status)}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vlm3-ros call", description="Call a vlm3_ros perception node's services.")
    p.add_argument("--node", default="/vlm3_perception", help="node name (default /vlm3_perception)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="the request's deadline in seconds (timeout_s): the node stops the work and answers TIMEOUT "
                        "once it passes; capped by the node's request_timeout_s")
    p.add_argument("--action", action="store_true",
                   help="depth and object only: send a goal to the action of the same name (progress as it runs)")
    sub = p.add_subparsers(dest="kind", required=True)
    d = sub.add_parser("depth", help="GetDepth at pixels")
    d.add_argument("pixels", nargs="+", help="x,y in original pixels")
    d.add_argument("--frame", default="latest", help="latest | keyframe | stamp in seconds")
    d.add_argument("--range", action="store_true", help="range along the ray instead of z-depth")
    po = sub.add_parser("pose", help="EstimatePose between two frames")
    po.add_argument("--a", default="keyframe", help="reference frame: latest | keyframe | stamp")
    po.add_argument("--b", default="latest", help="second frame")
    po.add_argument("--no-distance", action="store_true", help="skip the metric distance question")
    co = sub.add_parser("corr", help="FindCorrespondence from frame a to frame b")
    co.add_argument("pixels", nargs="+", help="x,y in frame a")
    co.add_argument("--a", default="keyframe")
    co.add_argument("--b", default="latest")
    sp = sub.add_parser("object", help="ObjectQuery: a spatial question about regions")
    sp.add_argument("--region", action="append", default=[], help="x_min,y_min,x_max,y_max (repeat)")
    sp.add_argument("--question", required=True, help="refer to regions as 'Region [0]', 'Region [1]', ...")
    sp.add_argument("--frame", default="latest")
    sub.add_parser("reset", help="reset visual odometry")
    a = p.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node("vlm3_ros_call")
    client = PerceptionClient(node, a.node)
    try:
        if a.kind == "reset":
            if not client.reset.wait_for_service(timeout_sec=10.0):
                print(f"service {client.reset.srv_name} not available", file=sys.stderr)
                return 1
            r = client.call(client.reset, Trigger.Request(), a.timeout)
            print(("OK " if r.success else "FAILED ") + r.message)
            return 0 if r.success else 1
        if not client.wait(10.0):
            print(f"services of {a.node} not available: is the node running (vlm3-ros node / bringup)?",
                  file=sys.stderr)
            return 1
        if a.action and a.kind not in ("depth", "object"):
            print("--action: only depth and object have actions", file=sys.stderr)
            return 2
        if a.kind == "depth":
            req = GetDepth.Request(frame=selector(a.frame), pixels=_pixels(a.pixels),
                                   depth_type=GetDepth.Request.RANGE if a.range else GetDepth.Request.Z_DEPTH)
            resp = (_goal(client, "depth", GetDepthAction.Goal(frame=req.frame, pixels=req.pixels,
                                                                depth_type=req.depth_type), a.timeout)
                    if a.action else client.call(client.depth, req, a.timeout))
        elif a.kind == "pose":
            req = EstimatePose.Request(frame_a=selector(a.a), frame_b=selector(a.b), with_distance=not a.no_distance)
            resp = client.call(client.pose, req, a.timeout)
        elif a.kind == "corr":
            req = FindCorrespondence.Request(frame_a=selector(a.a), frame_b=selector(a.b), pixels_a=_pixels(a.pixels))
            resp = client.call(client.corr, req, a.timeout)
        else:
            regions = []
            for r in a.region:
                x1, y1, x2, y2 = (float(v) for v in r.split(","))
                regions.append(Region(x_min=x1, y_min=y1, x_max=x2, y_max=y2))
            req = ObjectQuery.Request(frame=selector(a.frame), regions=regions, question=a.question)
            resp = (_goal(client, "object", ObjectQueryAction.Goal(frame=req.frame, regions=regions,
                                                                   question=a.question), a.timeout)
                    if a.action else client.call(client.object, req, a.timeout))
        print(describe(a.kind, resp))
        return 0 if resp.success else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
