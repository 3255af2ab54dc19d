"""Read camera data, depth and ground-truth poses from rosbag2 (MCAP, sqlite3) and ROS 1 bags with
the ``rosbags`` library (no ROS needed), as plain records in bag-time order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlm3_ros.geometry.camera import CameraInfoData
from vlm3_ros.geometry.pose import make_T, quat_xyzw_to_matrix
from vlm3_ros.geometry.trajectory import Trajectory
from vlm3_ros.readers import image_codec

IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/Image"}
INFO_TYPES = {"sensor_msgs/msg/CameraInfo", "sensor_msgs/CameraInfo"}
TF_TYPES = {"tf2_msgs/msg/TFMessage", "tf2_msgs/TFMessage", "tf/tfMessage"}
POSE_TYPES = {"geometry_msgs/msg/PoseStamped", "geometry_msgs/PoseStamped"}
ODOM_TYPES = {"nav_msgs/msg/Odometry", "nav_msgs/Odometry"}


class BagError(ValueError):
    """The bag cannot be read, or lacks a topic the caller needs (message names it)."""


@dataclass(frozen=True)
class BagTopics:
    image: str = "/camera/rgb/image_color"
    camera_info: str = "/camera/rgb/camera_info"
    depth: str = "/camera/depth_registered/image_raw"
    tf: str = "/tf"
    pose: str = ""                      # PoseStamped or Odometry topic; "" = use /tf
    world_frame: str = "world"
    camera_frame: str = "camera_rgb_optical_frame"


@dataclass(frozen=True)
class ImageRecord:
    stamp_ns: int
    frame_id: str
    encoding: str
    width: int
    height: int
    step: int
    data: bytes
    is_bigendian: bool = False

    def rgb(self) -> np.ndarray:
        return image_codec.to_rgb8(self.encoding, self.width, self.height, self.step, self.data, self.is_bigendian)

    def depth_m(self) -> np.ndarray:
        return image_codec.to_depth_m(self.encoding, self.width, self.height, self.step, self.data,
                                      self.is_bigendian)


@dataclass(frozen=True)
class InfoRecord:
    stamp_ns: int
    info: CameraInfoData


@dataclass(frozen=True)
class TfRecord:
    stamp_ns: int
    parent: str
    child: str
    T: np.ndarray


@dataclass(frozen=True)
class Record:
    kind: str                  # image | camera_info | depth | tf | pose
    topic: str
    log_time_ns: int
    value: Any


def _stamp(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _field(msg: Any, *names: str) -> Any:
    for n in names:
        if hasattr(msg, n):
            return getattr(msg, n)
    raise AttributeError(names[0])


def camera_info_from_msg(m: Any) -> CameraInfoData:
    """A deserialised CameraInfo (ROS 2 lower-case or ROS 1 upper-case fields) -> CameraInfoData."""
    roi = m.roi
    return CameraInfoData(
        width=int(m.width), height=int(m.height), k=tuple(float(v) for v in _field(m, "k", "K")),
        d=tuple(float(v) for v in _field(m, "d", "D")), distortion_model=str(m.distortion_model),
        r=tuple(float(v) for v in _field(m, "r", "R")), p=tuple(float(v) for v in _field(m, "p", "P")),
        binning_x=int(m.binning_x), binning_y=int(m.binning_y), roi_x_offset=int(roi.x_offset),
        roi_y_offset=int(roi.y_offset), roi_width=int(roi.width), roi_height=int(roi.height),
        frame_id=str(m.header.frame_id))


def _image(m: Any) -> ImageRecord:
    data = m.data.tobytes() if isinstance(m.data, np.ndarray) else bytes(m.data)
    return ImageRecord(_stamp(m.header), str(m.header.frame_id), str(m.encoding), int(m.width), int(m.height),
                       int(m.step), data, bool(m.is_bigendian))


def _T(tr: Any, rot: Any) -> np.ndarray:
    return make_T(quat_xyzw_to_matrix([rot.x, rot.y, rot.z, rot.w]), [tr.x, tr.y, tr.z])


def loop_period_ns(records: list[Record]) -> int:
    """How far each loop of a replayed bag moves its stamps: the header-stamp span plus one median
    gap between images, so loop k+1 starts one frame after loop k ends (the player and the
    ground-truth double agree on it)."""
    stamps = sorted(r.value.stamp_ns for r in records if isinstance(r.value, (ImageRecord, InfoRecord, TfRecord)))
    images = sorted(r.value.stamp_ns for r in records if r.kind == "image")
    gap = int(np.median(np.diff(images))) if len(images) > 1 else 100_000_000
    return (stamps[-1] - stamps[0] + gap) if stamps else gap


def shifted(value: object, offset_ns: int) -> object:
    """A record's value with its header stamp moved by ``offset_ns``."""
    if offset_ns and isinstance(value, (ImageRecord, InfoRecord, TfRecord)):
        return dataclasses.replace(value, stamp_ns=value.stamp_ns + offset_ns)
    return value


@dataclass
class BagReader:
    path: Path
    topics: BagTopics = field(default_factory=BagTopics)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")

    def _reader(self) -> Any:
        from rosbags.highlevel import AnyReader

        try:
            return AnyReader([self.path])
        except Exception as e:
            raise BagError(f"cannot open bag {self.path}: {e}") from e

    def topic_types(self) -> dict[str, str]:
        with self._reader() as r:
            return {c.topic: c.msgtype for c in r.connections}

    def require(self, *names: str) -> None:
        """Raise naming every requested topic (by BagTopics field) the bag lacks."""
        have = self.topic_types()
        missing = [f"{n}={getattr(self.topics, n)!r}" for n in names
                   if getattr(self.topics, n) and getattr(self.topics, n) not in have]
        if missing:
            raise BagError(f"bag {self.path.name} lacks topic(s) {', '.join(missing)}; it has "
                           f"{sorted(have)}. Set the matching --*-topic option.")

    def records(self, kinds: tuple[str, ...] = ("image", "camera_info", "depth", "tf", "pose")) -> Iterator[Record]:
        t = self.topics
        wanted = {t.image: "image", t.camera_info: "camera_info", t.depth: "depth", t.tf: "tf"}
        if t.pose:
            wanted[t.pose] = "pose"
        wanted = {k: v for k, v in wanted.items() if k and v in kinds}
        with self._reader() as r:
            conns = [c for c in r.connections if c.topic in wanted]
            for c, log_time, raw in r.messages(connections=conns):
                kind = wanted[c.topic]
                m = r.deserialize(raw, c.msgtype)
                if kind in ("image", "depth"):
                    yield Record(kind, c.topic, log_time, _image(m))
                elif kind == "camera_info":
                    yield Record(kind, c.topic, log_time, InfoRecord(_stamp(m.header), camera_info_from_msg(m)))
                elif kind == "tf":
                    for ts in m.transforms:
                        yield Record(kind, c.topic, log_time, TfRecord(
                            _stamp(ts.header), str(ts.header.frame_id), str(ts.child_frame_id),
                            _T(ts.transform.translation, ts.transform.rotation)))
                elif kind == "pose":
                    p = m.pose.pose if c.msgtype in ODOM_TYPES else m.pose
                    yield Record(kind, c.topic, log_time, TfRecord(
                        _stamp(m.header), str(m.header.frame_id), t.camera_frame, _T(p.position, p.orientation)))

    def trajectory(self) -> Trajectory:
        """Ground-truth camera poses T_world_camera from the pose topic or the /tf chain."""
        t = self.topics
        stamps, poses = [], []
        kind = "pose" if t.pose else "tf"
        for rec in self.records((kind,)):
            tf: TfRecord = rec.value
            if kind == "tf" and (tf.parent != t.world_frame or tf.child != t.camera_frame):
                continue
            stamps.append(tf.stamp_ns * 1e-9)
            poses.append(tf.T)
        if not stamps:
            src = f"topic {t.pose}" if t.pose else f"/tf {t.world_frame} -> {t.camera_frame}"
            raise BagError(f"no ground-truth poses in {self.path.name} ({src}); set --world-frame/--camera-frame "
                           "or --pose-topic")
        order = np.argsort(stamps, kind="stable")
        return Trajectory(np.asarray(stamps)[order], np.stack(poses)[order])

    def depth_images(self) -> dict[int, ImageRecord]:
        return {rec.value.stamp_ns: rec.value for rec in self.records(("depth",))}
