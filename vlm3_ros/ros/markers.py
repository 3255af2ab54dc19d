"""visualization_msgs markers of what the node estimated: the depth points it answered (in the
camera optical frame, with the image's stamp) and the visual-odometry path (in the odom frame)."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker

from vlm3_ros.ros import conversions as cv

DEPTH_NS, PATH_NS = "vlm3_depth_points", "vlm3_vo_path"


def depth_points(points: np.ndarray, stamp_ns: int, frame_id: str, lifetime_s: float = 2.0) -> Marker:
    """The finite points (N, 3) as a sphere list; NaN points (failed answers) are left out."""
    m = Marker(header=Header(stamp=cv.to_time(stamp_ns), frame_id=frame_id), ns=DEPTH_NS, id=0,
               type=Marker.SPHERE_LIST, action=Marker.ADD, scale=Vector3(x=0.04, y=0.04, z=0.04),
               color=ColorRGBA(r=0.1, g=0.9, b=0.2, a=1.0))
    m.pose.orientation.w = 1.0
    m.lifetime.sec, m.lifetime.nanosec = int(lifetime_s), int((lifetime_s % 1) * 1e9)
    m.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points if np.all(np.isfinite((x, y, z)))]
    return m


def path(positions: list[np.ndarray], stamp_ns: int, frame_id: str) -> Marker:
    m = Marker(header=Header(stamp=cv.to_time(stamp_ns), frame_id=frame_id), ns=PATH_NS, id=0,
               type=Marker.LINE_STRIP, action=Marker.ADD, scale=Vector3(x=0.01),
               color=ColorRGBA(r=1.0, g=0.5, b=0.0, a=1.0))
    m.pose.orientation.w = 1.0
    m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in positions]
    return m
