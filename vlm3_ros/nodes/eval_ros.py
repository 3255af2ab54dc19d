"""``vlm3-ros eval --through-ros``: the evaluation's queries sent to a running perception node.

Publishes the bag's frames (Image + CameraInfo, recorded stamps) on the node's camera topics,
waits until the node has cached them, then asks its services with BY_STAMP selectors: the real
user path (DDS, message conversion, the node's validation and threading) is what gets measured.
The node's ``frame_cache_size`` must hold every frame of the bag.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from vlm3_ros import pose as P
from vlm3_ros.camera import CameraInfoData
from vlm3_ros.msg import FrameSelector, Pixel, Status
from vlm3_ros.nodes import conversions as cv
from vlm3_ros.nodes.client import PerceptionClient
from vlm3_ros.pipeline import Frame
from vlm3_ros.srv import EstimatePose, FindCorrespondence, GetDepth


def _info_of(frame: Frame) -> CameraInfoData:
    c = frame.camera
    k = tuple(float(v) for v in c.K.ravel())
    return CameraInfoData(width=c.width, height=c.height, k=k, d=tuple(float(v) for v in c.D),
                          distortion_model=c.distortion_model, p=tuple(float(v) for v in c.P.ravel()),
                          frame_id=frame.frame_id)


class RosRunner:
    def __init__(self, frames: list[Frame], target: str, image_topic: str, info_topic: str,
                 timeout_s: float = 120.0) -> None:
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

    def depth(self, f: Frame, px: np.ndarray, depth_type: str) -> tuple[Any, float]:
        kind = GetDepth.Request.Z_DEPTH if depth_type == "z_depth" else GetDepth.Request.RANGE
        req = GetDepth.Request(frame=self._sel(f), pixels=[Pixel(x=float(x), y=float(y)) for x, y in px],
                               depth_type=kind)
        t = time.monotonic()
        r = self.client.call(self.client.depth, req, self.timeout)
        dt = time.monotonic() - t
        codes = np.array([s.code for s in r.point_status] or [4] * len(px))
        depth = np.array(r.depth if r.depth else [np.nan] * len(px), dtype=np.float64)
        return SimpleNamespace(codes=codes, depth=depth), dt

    def pose(self, a: Frame, b: Frame) -> tuple[Any, float]:
        t = time.monotonic()
        r = self.client.call(self.client.pose, EstimatePose.Request(frame_a=self._sel(a), frame_b=self._sel(b),
                                                                    with_distance=True), self.timeout)
        dt = time.monotonic() - t
        T = None
        if r.status.code in (Status.OK, Status.PARTIAL):
            tr, q = r.transform_a_b.translation, r.transform_a_b.rotation
            T = P.pose_from_tq(np.array([tr.x, tr.y, tr.z]), np.array([q.x, q.y, q.z, q.w]))
        dist = r.distance_m if r.metric else None
        return SimpleNamespace(T_a_b=T, distance_m=dist), dt

    def corr(self, a: Frame, b: Frame, px: np.ndarray) -> tuple[Any, float]:
        req = FindCorrespondence.Request(frame_a=self._sel(a), frame_b=self._sel(b),
                                         pixels_a=[Pixel(x=float(x), y=float(y)) for x, y in px])
        t = time.monotonic()
        r = self.client.call(self.client.corr, req, self.timeout)
        dt = time.monotonic() - t
        codes = np.array([s.code for s in r.point_status] or [4] * len(px))
        pix = np.array([[p.x, p.y] for p in r.pixels_b] or [[np.nan, np.nan]] * len(px), dtype=np.float64)
        return SimpleNamespace(codes=codes, pixels_b=pix), dt

    def close(self) -> None:
        self.node.destroy_node()


def main(argv: list[str] | None = None) -> int:
    """`vlm3-ros eval --through-ros ...`: the evaluation with this runner."""
    import rclpy

    from vlm3_ros.evaluate import parser, run

    a = parser().parse_args(argv)
    a.through_ros = True  # DDS settings come from the environment, as for any ROS 2 tool
    own = not rclpy.ok()
    if own:
        rclpy.init()
    try:
        return run(a, lambda seq: RosRunner(seq.frames, a.node, a.node_image_topic, a.node_camera_info_topic))
    finally:
        if own:
            rclpy.try_shutdown()
