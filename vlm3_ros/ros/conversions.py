"""ROS message <-> core data conversions (the only place that knows both)."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import (
    Point,
    Pose,
    PoseWithCovariance,
    Quaternion,
    Transform,
    TransformStamped,
    TwistWithCovariance,
    Vector3,
)
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from vlm3_ros.geometry.backproject import PointCloudLayout
from vlm3_ros.geometry.camera import CameraInfoData
from vlm3_ros.geometry.pose import matrix_to_quat_xyzw
from vlm3_ros.readers import image_codec
from vlm3_ros.serving.core import TfEdge


def stamp_ns(t: Time) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def to_time(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def camera_info_data(msg: CameraInfo) -> CameraInfoData:
    return CameraInfoData(
        width=int(msg.width), height=int(msg.height), k=tuple(float(v) for v in msg.k),
        d=tuple(float(v) for v in msg.d), distortion_model=str(msg.distortion_model),
        r=tuple(float(v) for v in msg.r), p=tuple(float(v) for v in msg.p), binning_x=int(msg.binning_x),
        binning_y=int(msg.binning_y), roi_x_offset=int(msg.roi.x_offset), roi_y_offset=int(msg.roi.y_offset),
        roi_width=int(msg.roi.width), roi_height=int(msg.roi.height), frame_id=str(msg.header.frame_id))


def camera_info_msg(info: CameraInfoData, stamp: int, frame_id: str | None = None) -> CameraInfo:
    m = CameraInfo()
    m.header = Header(stamp=to_time(stamp), frame_id=frame_id if frame_id is not None else info.frame_id)
    m.width, m.height = info.width, info.height
    m.distortion_model = info.distortion_model
    m.d = [float(v) for v in info.d]
    m.k = [float(v) for v in info.k]
    m.r = [float(v) for v in info.r]
    m.p = [float(v) for v in (info.p or (*info.k[:3], 0.0, *info.k[3:6], 0.0, *info.k[6:9], 0.0))]
    m.binning_x, m.binning_y = info.binning_x, info.binning_y
    m.roi.x_offset, m.roi.y_offset = info.roi_x_offset, info.roi_y_offset
    m.roi.width, m.roi.height = info.roi_width, info.roi_height
    return m


def image_to_rgb(msg: Image, max_pixels: int) -> np.ndarray:
    return image_codec.to_rgb8(msg.encoding, int(msg.width), int(msg.height), int(msg.step), bytes(msg.data),
                               bool(msg.is_bigendian), max_pixels)


def rgb_to_image(rgb: np.ndarray, stamp: int, frame_id: str, encoding: str = "rgb8") -> Image:
    w, h, step, data = image_codec.from_rgb8(rgb, encoding)
    m = Image()
    m.header = Header(stamp=to_time(stamp), frame_id=frame_id)
    m.width, m.height, m.step, m.encoding, m.is_bigendian = w, h, step, encoding, 0
    m.data = data
    return m


def raw_image_msg(stamp: int, frame_id: str, encoding: str, width: int, height: int, step: int,
                  data: bytes, is_bigendian: bool = False) -> Image:
    m = Image()
    m.header = Header(stamp=to_time(stamp), frame_id=frame_id)
    m.width, m.height, m.step, m.encoding, m.is_bigendian = width, height, step, encoding, int(is_bigendian)
    m.data = data
    return m


def pointcloud2(layout: PointCloudLayout, stamp: int, frame_id: str) -> PointCloud2:
    m = PointCloud2()
    m.header = Header(stamp=to_time(stamp), frame_id=frame_id)
    m.height, m.width = layout.height, layout.width
    m.fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in layout.fields]
    m.is_bigendian = layout.is_bigendian
    m.point_step, m.row_step = layout.point_step, layout.row_step
    m.data = layout.data
    m.is_dense = layout.is_dense
    return m


def transform_msg(T: np.ndarray) -> Transform:
    q = matrix_to_quat_xyzw(T[:3, :3])
    return Transform(translation=Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                     rotation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))


def tf_edge(t: TransformStamped) -> TfEdge:
    """geometry_msgs/TransformStamped -> the core's edge, unvalidated (the core checks it)."""
    tr, q = t.transform.translation, t.transform.rotation
    return TfEdge(str(t.header.frame_id), str(t.child_frame_id), stamp_ns(t.header.stamp),
                  (float(tr.x), float(tr.y), float(tr.z)), (float(q.x), float(q.y), float(q.z), float(q.w)))


def point_msg(p: np.ndarray) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def odometry_msg(T: np.ndarray, stamp: int, odom_frame: str, base_frame: str, position_stddev_m: float,
                 rotation_stddev_deg: float) -> Odometry:
    """odom -> base as nav_msgs/Odometry with a diagonal pose covariance; the twist is not
    estimated (covariance 1e6, REP 105 consumers then ignore it)."""
    sp, sr = position_stddev_m**2, np.radians(rotation_stddev_deg) ** 2
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    pose.orientation = transform_msg(T).rotation
    return Odometry(header=Header(stamp=to_time(stamp), frame_id=odom_frame), child_frame_id=base_frame,
                    pose=PoseWithCovariance(pose=pose, covariance=np.diag([sp, sp, sp, sr, sr, sr]).ravel().tolist()),
                    twist=TwistWithCovariance(covariance=(np.eye(6) * 1e6).ravel().tolist()))
