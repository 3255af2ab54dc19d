"""Read camera data, depth and ground-truth poses from rosbag2 (MCAP, sqlite3) and ROS 1 bags with
the ``rosbags`` library (no ROS needed), as plain records in bag-time order.

Images and depth may be raw (``sensor_msgs/Image``) or compressed (``sensor_msgs/CompressedImage``:
jpeg/png, and image_transport's ``compressedDepth``). Ground-truth poses come from the TF tree of
the bag (``/tf_static`` + ``/tf``, chains composed through any tree) from a world frame to the
camera's optical frame, optionally fed by a PoseStamped / Odometry / TransformStamped topic.
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
from vlm3_ros.geometry.tf_tree import TfError, TfTree, edge_matrix
from vlm3_ros.geometry.trajectory import Trajectory
from vlm3_ros.readers import image_codec

IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/Image"}
COMPRESSED_TYPES = {"sensor_msgs/msg/CompressedImage", "sensor_msgs/CompressedImage"}
INFO_TYPES = {"sensor_msgs/msg/CameraInfo", "sensor_msgs/CameraInfo"}
TF_TYPES = {"tf2_msgs/msg/TFMessage", "tf2_msgs/TFMessage", "tf/tfMessage"}
POSE_TYPES = {"geometry_msgs/msg/PoseStamped", "geometry_msgs/PoseStamped"}
ODOM_TYPES = {"nav_msgs/msg/Odometry", "nav_msgs/Odometry"}
TRANSFORM_TYPES = {"geometry_msgs/msg/TransformStamped", "geometry_msgs/TransformStamped"}


class BagError(ValueError):
    """The bag cannot be read, or lacks a topic the caller needs (message names it)."""


@dataclass(frozen=True)
class BagTopics:
    """Where things are in a bag. Frames left empty are found: the camera frame is the image's (or
    depth's) header frame_id, the world frame is the root of the camera's TF tree."""

    image: str = "/camera/rgb/image_color"
    camera_info: str = "/camera/rgb/camera_info"
    depth: str = "/camera/depth_registered/image_raw"
    tf: str = "/tf"
    tf_static: str = "/tf_static"
    pose: str = ""                      # PoseStamped / Odometry / TransformStamped ground truth ("" = TF only)
    world_frame: str = ""
    camera_frame: str = ""


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
class CompressedRecord:
    """A sensor_msgs/CompressedImage: a colour image (jpeg/png) or a ``compressedDepth`` one."""

    stamp_ns: int
    frame_id: str
    format: str
    data: bytes

    @property
    def is_depth(self) -> bool:
        return "compresseddepth" in self.format.lower()

    def rgb(self) -> np.ndarray:
        return image_codec.compressed_to_rgb(self.format, self.data)

    def depth_m(self) -> np.ndarray:
        return image_codec.compressed_depth_to_m(self.format, self.data)


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
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_xyzw: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Record:
    kind: str                  # image | camera_info | depth | tf | tf_static | pose
    topic: str
    log_time_ns: int
    value: Any
    msgtype: str = ""


def _stamp(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _field(msg: Any, *names: str) -> Any:
    for n in names:
        if hasattr(msg, n):
            return getattr(msg, n)
    raise AttributeError(names[0])


def _bytes(data: Any) -> bytes:
    return data.tobytes() if isinstance(data, np.ndarray) else bytes(data)


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


def _image(m: Any, msgtype: str) -> ImageRecord | CompressedRecord:
    if msgtype in COMPRESSED_TYPES:
        return CompressedRecord(_stamp(m.header), str(m.header.frame_id), str(m.format), _bytes(m.data))
    return ImageRecord(_stamp(m.header), str(m.header.frame_id), str(m.encoding), int(m.width), int(m.height),
                       int(m.step), _bytes(m.data), bool(m.is_bigendian))


def _tf(stamp: int, parent: str, child: str, tr: Any, rot: Any) -> TfRecord:
    t = (float(tr.x), float(tr.y), float(tr.z))
    q = (float(rot.x), float(rot.y), float(rot.z), float(rot.w))
    try:
        T = make_T(quat_xyzw_to_matrix(list(q)), list(t))
    except ValueError:
        T = np.full((4, 4), np.nan)  # an invalid transform is kept as recorded; the tree rejects it
    return TfRecord(stamp, parent, child, T, t, q)


def loop_period_ns(records: list[Record]) -> int:
    """How far each loop of a replayed bag moves its stamps: the header-stamp span plus one median
    gap between images, so loop k+1 starts one frame after loop k ends (the player and the
    ground-truth double agree on it)."""
    timed = (ImageRecord, CompressedRecord, InfoRecord, TfRecord)
    stamps = sorted(r.value.stamp_ns for r in records if isinstance(r.value, timed) and r.kind != "tf_static")
    images = sorted(r.value.stamp_ns for r in records if r.kind == "image")
    gap = int(np.median(np.diff(images))) if len(images) > 1 else 100_000_000
    return (stamps[-1] - stamps[0] + gap) if stamps else gap


def shifted(value: object, offset_ns: int) -> object:
    """A record's value with its header stamp moved by ``offset_ns``."""
    if offset_ns and isinstance(value, (ImageRecord, CompressedRecord, InfoRecord, TfRecord)):
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
                           f"{sorted(have)}. Run `vlm3-ros inspect {self.path}` to see its cameras, or set the "
                           "matching --*-topic option.")

    def records(self, kinds: tuple[str, ...] = ("image", "camera_info", "depth", "tf", "tf_static", "pose")
                ) -> Iterator[Record]:
        t = self.topics
        wanted = {t.image: "image", t.camera_info: "camera_info", t.depth: "depth", t.tf: "tf",
                  t.tf_static: "tf_static"}
        if t.pose:
            wanted[t.pose] = "pose"
        wanted = {k: v for k, v in wanted.items() if k and v in kinds}
        with self._reader() as r:
            conns = [c for c in r.connections if c.topic in wanted]
            if not conns:
                return  # rosbags reads every connection when given none
            for c, log_time, raw in r.messages(connections=conns):
                kind = wanted[c.topic]
                m = r.deserialize(raw, c.msgtype)
                if kind in ("image", "depth"):
                    yield Record(kind, c.topic, log_time, _image(m, c.msgtype), c.msgtype)
                elif kind == "camera_info":
                    yield Record(kind, c.topic, log_time, InfoRecord(_stamp(m.header), camera_info_from_msg(m)),
                                 c.msgtype)
                elif kind in ("tf", "tf_static"):
                    for ts in m.transforms:
                        yield Record(kind, c.topic, log_time, _tf(_stamp(ts.header), str(ts.header.frame_id),
                                                                  str(ts.child_frame_id), ts.transform.translation,
                                                                  ts.transform.rotation), c.msgtype)
                elif kind == "pose":
                    yield Record(kind, c.topic, log_time, self._pose(m, c.msgtype), c.msgtype)

    def _pose(self, m: Any, msgtype: str) -> TfRecord:
        """A ground-truth pose message as a TF edge (parent = its header frame)."""
        if msgtype in ODOM_TYPES:
            p = m.pose.pose
            return _tf(_stamp(m.header), str(m.header.frame_id), str(m.child_frame_id), p.position, p.orientation)
        if msgtype in TRANSFORM_TYPES:
            return _tf(_stamp(m.header), str(m.header.frame_id), str(m.child_frame_id), m.transform.translation,
                       m.transform.rotation)
        # PoseStamped has no child frame: it is the camera's pose (the camera frame)
        return _tf(_stamp(m.header), str(m.header.frame_id), self.camera_frame(), m.pose.position, m.pose.orientation)

    def camera_frame(self) -> str:
        """The camera's optical frame: as set, else the image's (or the depth's) header frame_id."""
        if self.topics.camera_frame:
            return self.topics.camera_frame
        for kind in ("image", "depth"):
            for rec in self.records((kind,)):
                if rec.value.frame_id:
                    return str(rec.value.frame_id)
        raise BagError(f"bag {self.path.name}: no image or depth message names its frame; set --camera-frame")

    def tf_tree(self) -> TfTree:
        """Every /tf_static, /tf and pose-topic edge of the bag (a bad edge is skipped)."""
        tree = TfTree(cache_s=1e9, tolerance_s=0.05)
        for rec in self.records(("tf_static", "tf", "pose")):
            e: TfRecord = rec.value
            try:
                T = edge_matrix(e.translation, e.rotation_xyzw)
                if rec.kind == "tf_static":
                    tree.set_static(e.parent, e.child, T)
                else:
                    tree.set_dynamic(e.parent, e.child, T, e.stamp_ns)
            except TfError:
                continue
        return tree

    def trajectory(self, stamps: list[int] | None = None) -> Trajectory:
        """Ground-truth camera poses T_world_camera through the TF tree (world frame as set, else the
        root of the camera's tree), sampled at the chain's /tf stamps and at ``stamps``."""
        cam = self.camera_frame()
        tree = self.tf_tree()
        src = f"topic {self.topics.pose} + " if self.topics.pose else ""
        if cam not in tree.frames():
            raise BagError(f"no ground-truth poses in {self.path.name}: the camera frame {cam!r} is not in its TF "
                           f"tree ({src}/tf, /tf_static; frames: {sorted(tree.frames()) or 'none'}); set "
                           "--camera-frame, --pose-topic or --trajectory")
        world = self.topics.world_frame or tree.root(cam)
        try:
            samples = sorted(set(tree.chain_stamps(world, cam)) | set(stamps or ()))
        except TfError as e:
            raise BagError(f"no ground-truth poses in {self.path.name}: {e}; set --world-frame") from e
        if not tree.chain_stamps(world, cam):
            raise BagError(f"no ground-truth poses in {self.path.name}: the chain {tree.describe(world, cam)} never "
                           "moves (no /tf or pose-topic edge on it); give --pose-topic or --trajectory")
        times, poses = [], []
        for s in samples:
            try:
                poses.append(tree.lookup(world, cam, s))
                times.append(s * 1e-9)
            except TfError:
                continue
        if not poses:
            raise BagError(f"no ground-truth poses in {self.path.name} ({world} -> {cam})")
        return Trajectory(np.asarray(times), np.stack(poses))

    def depth_images(self) -> dict[int, ImageRecord | CompressedRecord]:
        return {rec.value.stamp_ns: rec.value for rec in self.records(("depth",))}
