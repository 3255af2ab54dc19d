"""The perception services: for each task of the registry, its interface type and the handler that
converts the request into a call on the serving core's requests (serving.service_requests) and the
reply into the response. Nothing is decided here; statuses, limits and messages come from
vlm3_ros.serving."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from std_msgs.msg import Header

from vlm3_ros.geometry.camera import CameraModel
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.msg import FrameSelector, Pixel, PointStatus, Region
from vlm3_ros.ros import conversions as cv
from vlm3_ros.serving.frame_selection import FrameRef
from vlm3_ros.serving.service_requests import Reply, ServiceRequests
from vlm3_ros.srv import EstimatePose, FindCorrespondence, GetDepth, ObjectQuery
from vlm3_ros.tasks.common import Timings
from vlm3_ros.tasks.corr_task import CorrResult
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.object_task import ObjectResult
from vlm3_ros.tasks.pose_task import PoseResult
from vlm3_ros.tasks.task_registry import TASKS


def frame_ref(sel: FrameSelector, max_pixels: int) -> FrameRef:
    def explicit() -> Frame:
        rgb = cv.image_to_rgb(sel.image, max_pixels)
        info = cv.camera_info_data(sel.camera_info)
        return Frame(rgb, CameraModel.from_camera_info(info), cv.stamp_ns(sel.image.header.stamp),
                     sel.image.header.frame_id or info.frame_id)

    return FrameRef(int(sel.mode), cv.stamp_ns(sel.stamp), explicit if sel.mode == FrameSelector.EXPLICIT else None)


def _pair(serving: ServiceRequests, req: Any) -> tuple[FrameRef, FrameRef]:
    return frame_ref(req.frame_a, serving.max_image_pixels), frame_ref(req.frame_b, serving.max_image_pixels)


def _header(frame: Frame) -> Header:
    return Header(stamp=cv.to_time(frame.stamp_ns), frame_id=frame.frame_id)


def finish(serving: ServiceRequests, resp: Any, reply: Reply, fill: Callable[[Any], None]) -> Any:
    """The response: ``fill(result)`` when the task ran, headers of the frames the request
    resolved to, status, message and timings."""
    if reply.result is not None:
        t0 = time.perf_counter()
        fill(reply.result)
        reply.result.timings.convert_s = time.perf_counter() - t0
        serving.stats.record_stage("convert", reply.result.timings.convert_s)
    names = ("header_a", "header_b") if hasattr(resp, "header_a") else ("header",)
    if len(reply.frames) == len(names):
        for name, frame in zip(names, reply.frames, strict=True):
            setattr(resp, name, _header(frame))
    resp.success = reply.success
    resp.status.code = int(reply.code)
    resp.message = reply.message
    resp.timing.total_s = reply.total_s
    if reply.result is not None:
        t: Timings = reply.result.timings
        resp.timing.preprocess_s = t.preprocess_s
        resp.timing.inference_s = t.inference_s
        resp.timing.prompt_tokens = t.prompt_tokens
        resp.timing.generated_tokens = t.generated_tokens
        resp.timing.queue_s = t.queue_s
        resp.timing.image_s = t.image_s
        resp.timing.prefill_s = t.prefill_s
        resp.timing.decode_s = t.decode_s
        resp.timing.parse_s = t.parse_s
        resp.timing.convert_s = t.convert_s
    return resp


def _points_status(codes: np.ndarray, reasons: list[str]) -> list[PointStatus]:
    return [PointStatus(code=int(c), reason=r) for c, r in zip(codes, reasons, strict=True)]


def pixels_of(pixels: list[Pixel]) -> np.ndarray:
    return np.array([[p.x, p.y] for p in pixels], dtype=np.float64).reshape(-1, 2)


def fill_depth(resp: Any, r: DepthResult) -> None:
    """GetDepth's response fields (also the action's result and feedback) from ``r``."""
    resp.depth = [float(v) for v in r.depth]
    resp.points = [cv.point_msg(p) for p in r.points]
    resp.point_status = _points_status(r.codes, r.reasons)
    if hasattr(resp, "raw_answers"):
        resp.raw_answers = r.raw


def get_depth(serving: ServiceRequests, req: GetDepth.Request, resp: GetDepth.Response) -> GetDepth.Response:
    def fill(r: DepthResult) -> None:
        fill_depth(resp, r)

    reply = serving.get_depth(frame_ref(req.frame, serving.max_image_pixels), pixels_of(req.pixels),
                              int(req.depth_type), float(req.timeout_s))
    return finish(serving, resp, reply, fill)


def estimate_pose(serving: ServiceRequests, req: EstimatePose.Request,
                  resp: EstimatePose.Response) -> EstimatePose.Response:
    nan = float("nan")
    # No pose is NaN, never the identity: a planner that skips `success` must not read "did not move".
    t, q, d = resp.transform_a_b.translation, resp.transform_a_b.rotation, resp.translation_direction
    t.x = t.y = t.z = q.x = q.y = q.z = q.w = d.x = d.y = d.z = nan
    resp.yaw_deg = resp.pitch_deg = resp.roll_deg = resp.rotation_angle_deg = resp.distance_m = nan

    def fill(r: PoseResult) -> None:
        resp.raw_answers = list(r.raw.values())
        resp.yaw_deg, resp.pitch_deg, resp.roll_deg = r.ypr_deg if r.ypr_deg else (nan, nan, nan)
        resp.rotation_angle_deg = float(r.rotation_angle_deg) if r.rotation_angle_deg is not None else nan
        resp.distance_m = float(r.distance_m) if r.distance_m is not None else nan
        resp.metric = r.distance_m is not None
        if r.direction is not None:
            d = resp.translation_direction
            d.x, d.y, d.z = (float(v) for v in r.direction)
        if r.T_a_b is not None:
            resp.transform_a_b = cv.transform_msg(r.T_a_b)

    reply = serving.estimate_pose(*_pair(serving, req), bool(req.with_distance), float(req.timeout_s))
    return finish(serving, resp, reply, fill)


def find_correspondence(serving: ServiceRequests, req: FindCorrespondence.Request,
                        resp: FindCorrespondence.Response) -> FindCorrespondence.Response:
    def fill(r: CorrResult) -> None:
        resp.pixels_b = [Pixel(x=float(u), y=float(v)) for u, v in r.pixels_b]
        resp.point_status = _points_status(r.codes, r.reasons)
        resp.raw_answers = r.raw

    reply = serving.find_correspondence(*_pair(serving, req), pixels_of(req.pixels_a), float(req.timeout_s))
    return finish(serving, resp, reply, fill)


def fill_object(resp: Any, r: ObjectResult) -> None:
    """ObjectQuery's response fields (also the action's result) from ``r``."""
    resp.prompt, resp.raw_answer = r.prompt, r.raw
    a = r.answer
    if a is not None:
        resp.answer = a.text
        resp.has_quantity = a.quantity is not None
        resp.quantity = float(a.quantity) if a.quantity is not None else float("nan")
        resp.unit = a.unit
        resp.quantity_m = float(a.quantity_m) if a.quantity_m is not None else float("nan")
        resp.has_yes_no = a.yes is not None
        resp.yes = bool(a.yes)


def boxes_of(regions: list[Region]) -> np.ndarray:
    """The regions' corners as an (N, 4) array."""
    return np.array([[r.x_min, r.y_min, r.x_max, r.y_max] for r in regions], dtype=np.float64).reshape(-1, 4)


def object_query(serving: ServiceRequests, req: ObjectQuery.Request,
                 resp: ObjectQuery.Response) -> ObjectQuery.Response:
    def fill(r: ObjectResult) -> None:
        fill_object(resp, r)

    boxes = boxes_of(req.regions)
    reply = serving.object_query(frame_ref(req.frame, serving.max_image_pixels), boxes, req.question,
                                 [r.label for r in req.regions], float(req.timeout_s))
    return finish(serving, resp, reply, fill)


Handler = Callable[[ServiceRequests, Any, Any], Any]
SERVICES: dict[str, tuple[Any, Handler]] = {
    "depth": (GetDepth, get_depth),
    "pose": (EstimatePose, estimate_pose),
    "corr": (FindCorrespondence, find_correspondence),
    "object": (ObjectQuery, object_query),
}
assert set(SERVICES) == set(TASKS) and all(
    SERVICES[n][0].__name__ == s.service_type for n, s in TASKS.items()), "a task of the registry has no service"
