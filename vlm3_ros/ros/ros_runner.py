"""``vlm3-ros eval --through-ros``: the evaluation's queries sent to a running perception node.

Publishes the dataset's frames (Image + CameraInfo, recorded stamps) on the node's camera topics,
waits until the node has cached them, then asks its services with BY_STAMP selectors: the real
user path (DDS, message conversion, the node's validation and threading) is what gets measured.
Replies are converted back into the pipeline's own result types, so scoring is the same code as
in-process. The node's ``frame_cache_size`` must hold every frame of the bag.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from vlm3_ros.contract import answers
from vlm3_ros.eval.dataset import Dataset, EvalOptions
from vlm3_ros.eval.evaluation import run_evaluation
from vlm3_ros.geometry import pose as P
from vlm3_ros.geometry.camera import CameraInfoData
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.msg import FrameSelector, Pixel, Region, Status
from vlm3_ros.params.node_settings import NodeSettings
from vlm3_ros.readers.bag_contents import TopicRequest
from vlm3_ros.ros import conversions as cv
from vlm3_ros.ros.client import PerceptionClient
from vlm3_ros.srv import EstimatePose, FindCorrespondence, GetDepth, ObjectQuery
from vlm3_ros.tasks.common import PointCode, Timings
from vlm3_ros.tasks.corr_task import CorrResult
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.object_task import ObjectResult
from vlm3_ros.tasks.pose_task import ORDER, PoseResult


def _info_of(frame: Frame) -> CameraInfoData:
    c = frame.camera
    k = tuple(float(v) for v in c.K.ravel())
    return CameraInfoData(width=c.width, height=c.height, k=k, d=tuple(float(v) for v in c.D),
                          distortion_model=c.distortion_model, p=tuple(float(v) for v in c.P.ravel()),
                          frame_id=frame.frame_id)


def dataset_frames(ds: Dataset) -> list[Frame]:
    """Every frame the dataset's queries name, once, in stamp order."""
    seen: dict[tuple[str, int], Frame] = {}
    frames = [*ds.vo_frames, *(q.frame for q in ds.depth), *(f for q in ds.pose for f in (q.frame_a, q.frame_b)),
              *(f for q in ds.corr for f in (q.frame_a, q.frame_b)), *(q.frame for q in ds.object)]
    for f in frames:
        seen.setdefault((f.frame_id, f.stamp_ns), f)
    return sorted(seen.values(), key=lambda f: f.stamp_ns)


def _timings(msg: Any) -> Timings:
    t = msg.timing
    return Timings(t.preprocess_s, t.inference_s, int(t.prompt_tokens), int(t.generated_tokens))


def _codes(resp: Any, n: int) -> tuple[np.ndarray, list[str]]:
    if len(resp.point_status) == n:
        return (np.array([s.code for s in resp.point_status], dtype=np.int64), [s.reason for s in resp.point_status])
    return np.full(n, int(PointCode.NOT_RUN), dtype=np.int64), [resp.message] * n  # the request did not run


class RosRunner:
    """The eval Runner protocol over a node's services; every request carries the deadline
    ``timeout_s`` (the client's call sets it as the request's timeout_s)."""

    def __init__(self, frames: list[Frame], target: str, image_topic: str, info_topic: str,
                 timeout_s: float = 120.0) -> None:
        self.name = f"through-ros:{target}"
        self.node = Node("vlm3_eval_client")
        self.client = PerceptionClient(self.node, target)
        self.timeout = timeout_s
        if not self.client.wait(30):
            raise RuntimeError(f"services of {target} not available: start the node first")
        qos = QoSProfile(depth=len(frames) + 5, reliability=ReliabilityPolicy.RELIABLE)
        pub_img = self.node.create_publisher(Image, image_topic, qos)
        pub_info = self.node.create_publisher(CameraInfo, info_topic, qos)
        deadline = time.monotonic() + 15
        while min(pub_img.get_subscription_count(), pub_info.get_subscription_count()) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no subscriber on {image_topic} / {info_topic}: wrong topics?")
            time.sleep(0.05)
        time.sleep(0.5)
        for f in frames:
            pub_info.publish(cv.camera_info_msg(_info_of(f), f.stamp_ns))
            pub_img.publish(cv.rgb_to_image(f.image, f.stamp_ns, f.frame_id))
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        for f in frames:
            while True:
                r = self.client.call(self.client.depth, GetDepth.Request(frame=self._sel(f), pixels=[]), 30)
                if r.status.code != Status.FRAME_NOT_FOUND:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the node did not cache frame {f.stamp_ns} (frame_cache_size too small?)")
                time.sleep(0.1)

    @staticmethod
    def _sel(f: Frame) -> FrameSelector:
        return FrameSelector(mode=FrameSelector.BY_STAMP, stamp=cv.to_time(f.stamp_ns))

    def depth(self, frame: Frame, pixels: np.ndarray, depth_type: str) -> DepthResult:
        kind = GetDepth.Request.Z_DEPTH if depth_type == "z_depth" else GetDepth.Request.RANGE
        req = GetDepth.Request(frame=self._sel(frame), pixels=[Pixel(x=float(x), y=float(y)) for x, y in pixels],
                               depth_type=kind)
        r = self.client.call(self.client.depth, req, self.timeout)
        n = len(pixels)
        codes, reasons = _codes(r, n)
        depth = np.array(r.depth, dtype=np.float64) if len(r.depth) == n else np.full(n, np.nan)
        points = (np.array([[p.x, p.y, p.z] for p in r.points], dtype=np.float64) if len(r.points) == n
                  else np.full((n, 3), np.nan))
        raw = list(r.raw_answers) if len(r.raw_answers) == n else [""] * n
        return DepthResult(depth, points, codes, reasons, raw, _timings(r))

    def pose(self, frame_a: Frame, frame_b: Frame) -> PoseResult:
        req = EstimatePose.Request(frame_a=self._sel(frame_a), frame_b=self._sel(frame_b), with_distance=True)
        r = self.client.call(self.client.pose, req, self.timeout)
        ok = r.status.code in (Status.OK, Status.PARTIAL)
        T = None
        if ok:
            tr, q = r.transform_a_b.translation, r.transform_a_b.rotation
            T = P.pose_from_tq(np.array([tr.x, tr.y, tr.z]), np.array([q.x, q.y, q.z, q.w]))
        d = r.translation_direction
        direction = np.array([d.x, d.y, d.z]) if ok else None
        ypr = (r.yaw_deg, r.pitch_deg, r.roll_deg) if ok else None
        angle = r.rotation_angle_deg if np.isfinite(r.rotation_angle_deg) else None
        raw = dict(zip(ORDER, r.raw_answers, strict=False))
        reasons = {} if r.status.code == Status.OK else {"service": r.message}
        return PoseResult(T, direction, r.distance_m if r.metric else None, ypr, angle, raw, reasons, _timings(r))

    def corr(self, frame_a: Frame, frame_b: Frame, pixels_a: np.ndarray) -> CorrResult:
        req = FindCorrespondence.Request(frame_a=self._sel(frame_a), frame_b=self._sel(frame_b),
                                         pixels_a=[Pixel(x=float(x), y=float(y)) for x, y in pixels_a])
        r = self.client.call(self.client.corr, req, self.timeout)
        n = len(pixels_a)
        codes, reasons = _codes(r, n)
        pix = (np.array([[p.x, p.y] for p in r.pixels_b], dtype=np.float64) if len(r.pixels_b) == n
               else np.full((n, 2), np.nan))
        raw = list(r.raw_answers) if len(r.raw_answers) == n else [""] * n
        return CorrResult(pix, codes, reasons, raw, _timings(r))

    def object(self, frame: Frame, boxes: np.ndarray, question: str) -> ObjectResult:
        req = ObjectQuery.Request(frame=self._sel(frame), question=question,
                                  regions=[Region(x_min=float(b[0]), y_min=float(b[1]), x_max=float(b[2]),
                                                  y_max=float(b[3])) for b in boxes])
        r = self.client.call(self.client.object, req, self.timeout)
        ran = r.status.code in (Status.OK, Status.PARSE_FAILURE)
        parsed = answers.parse_object(r.raw_answer) if ran else None
        reason = "" if r.status.code == Status.OK else r.message
        return ObjectResult(parsed.value if parsed is not None else None, r.prompt, r.raw_answer, reason,
                            _timings(r), not_run=not ran)

    def close(self) -> None:
        self.node.destroy_node()


def evaluate_through_ros(settings: NodeSettings, bags: list[Path], labels: list[Path], request: TopicRequest,
                         opts: EvalOptions, target: str, image_topic: str, info_topic: str,
                         show_progress: bool = True, trajectory_file: Path | None = None,
                         trajectory_format: str = "") -> dict[str, Any]:
    """The evaluation with every query answered by the node ``target`` (DDS settings come from
    the environment, as for any ROS 2 tool)."""
    import rclpy

    own = not rclpy.ok()
    if own:
        rclpy.init()
    try:
        return run_evaluation(settings, bags, labels, request, opts,
                              lambda src, ds: RosRunner(dataset_frames(ds), target, image_topic, info_topic),
                              show_progress, trajectory_file, trajectory_format)
    finally:
        if own:
            rclpy.try_shutdown()
