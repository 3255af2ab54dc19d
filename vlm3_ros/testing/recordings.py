"""Recordings as users make them, repacked from the bundled TUM frames: RealSense-, ZED- and
OAK-D-style rosbag2 files with those drivers' topic names, encodings (rgb8 / bgra8 / bgr8,
16UC1 mm / 32FC1 m), compressed variants (jpeg + compressedDepth), a URDF-like TF tree with the
optical frame below a camera link on /tf_static and the motion as odom -> base_link on /tf,
plus a 16:9 camera (cropped) and a long-focal one (a 2x zoom of the centre).

The pixels, depth and motion are TUM's (CC BY 4.0); only the packaging differs, so the
ground-truth double must score them exactly as it scores the TUM bag.

    python -m vlm3_ros.testing.recordings OUT_DIR
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vlm3_ros.geometry.pose import invert, matrix_to_quat_xyzw, pose_from_tq
from vlm3_ros.readers import image_codec
from vlm3_ros.readers.tum import TumSequence

OPTICAL = (-0.5, 0.5, -0.5, 0.5)  # REP 103 body -> optical


@dataclass(frozen=True)
class Style:
    name: str
    color: str                # image topic
    info: str                 # its CameraInfo
    depth: str                # depth registered to the colour image
    encoding: str             # colour encoding
    depth_encoding: str       # 16UC1 (mm) or 32FC1 (m)
    links: tuple[tuple[str, str, tuple[float, ...]], ...]   # static chain base_link -> ... -> optical
    optical: str
    view: str = "full"        # full | wide (16:9 crop) | zoom (2x centre: long focal)


STYLES = {
    "realsense": Style("realsense", "/camera/camera/color/image_raw", "/camera/camera/color/camera_info",
                       "/camera/camera/aligned_depth_to_color/image_raw", "rgb8", "16UC1",
                       (("base_link", "camera_link", (0.1, 0.0, 0.2, 0, 0, 0, 1)),
                        ("camera_link", "camera_color_frame", (0.0, 0.015, 0.0, 0, 0, 0, 1)),
                        ("camera_color_frame", "camera_color_optical_frame", (0, 0, 0, *OPTICAL))),
                       "camera_color_optical_frame"),
    "zed": Style("zed", "/zed/zed_node/rgb/image_rect_color", "/zed/zed_node/rgb/camera_info",
                 "/zed/zed_node/depth/depth_registered", "bgra8", "32FC1",
                 (("base_link", "zed_camera_link", (0.05, 0.0, 0.3, 0, 0, 0, 1)),
                  ("zed_camera_link", "zed_left_camera_frame", (0.0, 0.06, 0.0, 0, 0, 0, 1)),
                  ("zed_left_camera_frame", "zed_left_camera_frame_optical", (0, 0, 0, *OPTICAL))),
                 "zed_left_camera_frame_optical", view="wide"),
    "oak": Style("oak", "/oak/rgb/image_raw", "/oak/rgb/camera_info", "/oak/stereo/image_raw", "bgr8", "16UC1",
                 (("base_link", "oak-d-base-frame", (0.12, 0.0, 0.25, 0, 0, 0, 1)),
                  ("oak-d-base-frame", "oak_rgb_camera_frame", (0.0, 0.0, 0.0, 0, 0, 0, 1)),
                  ("oak_rgb_camera_frame", "oak_rgb_camera_optical_frame", (0, 0, 0, *OPTICAL))),
                 "oak_rgb_camera_optical_frame", view="zoom"),
}


def _view(rgb: np.ndarray, depth: np.ndarray, k: list[float], view: str) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The frame as the style's camera sees it: the full 640x480, a 640x360 crop (16:9), or a 2x
    zoom of the 320x240 centre (1280x960 at twice the focal length); K follows."""
    k = list(k)
    if view == "wide":
        top = 60
        k[5] -= top
        return rgb[top:top + 360].copy(), depth[top:top + 360].copy(), k
    if view == "zoom":
        x0, y0 = 160, 120
        k[2], k[5] = (k[2] - x0) * 2 + 0.5, (k[5] - y0) * 2 + 0.5  # pixel centres under a 2x resize
        k[0], k[4] = k[0] * 2, k[4] * 2
        crop, dcrop = rgb[y0:y0 + 240, x0:x0 + 320], depth[y0:y0 + 240, x0:x0 + 320]
        return (cv2.resize(crop, (640, 480), interpolation=cv2.INTER_CUBIC),
                cv2.resize(dcrop, (640, 480), interpolation=cv2.INTER_NEAREST), k)
    return rgb, depth, k


def write_recording(out: Path, style: Style, compressed: bool = False, storage: str = "mcap") -> Path:
    """One bag of ``style`` from the bundled TUM frames (all of them, 0.9 s); returns its path."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    seq = TumSequence()
    info0 = seq.camera_info
    path = Path(out) / f"{style.name}{'_compressed' if compressed else ''}_{storage}"
    static_T = [pose_from_tq(np.array(x[:3]), np.array(x[3:])) for _, _, x in style.links]
    T_base_optical = static_T[0] @ static_T[1] @ static_T[2]

    def header(stamp: int, frame: str):
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9,
                                                                             nanosec=stamp % 10**9), frame_id=frame)

    def transform(parent: str, child: str, M: np.ndarray, stamp: int):
        q = matrix_to_quat_xyzw(M[:3, :3])
        return T["geometry_msgs/msg/TransformStamped"](
            header=header(stamp, parent), child_frame_id=child, transform=T["geometry_msgs/msg/Transform"](
                translation=T["geometry_msgs/msg/Vector3"](x=M[0, 3], y=M[1, 3], z=M[2, 3]),
                rotation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3])))

    msgs: list[tuple[int, str, str, object]] = []
    t0 = int(seq.frames[0].rgb_stamp * 1e9)
    msgs.append((t0 - 1_000_000, "/tf_static", "tf2_msgs/msg/TFMessage", T["tf2_msgs/msg/TFMessage"](
        transforms=[transform(p, c, M, 0) for (p, c, _), M in zip(style.links, static_T, strict=True)])))
    for i, f in enumerate(seq.frames):
        stamp = round(f.rgb_stamp * 1e9)
        rgb, depth, k = _view(f.rgb(), f.depth_m(), list(info0.k), style.view)
        h, w = rgb.shape[:2]
        p = [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
        info = T["sensor_msgs/msg/CameraInfo"](
            header=header(stamp, style.optical), height=h, width=w, distortion_model=info0.distortion_model,
            d=np.array(info0.d), k=np.array(k), r=np.eye(3).ravel(), p=np.array(p), binning_x=0, binning_y=0,
            roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
        msgs.append((stamp, style.info, "sensor_msgs/msg/CameraInfo", info))
        if compressed:
            fmt, data = image_codec.encode_compressed(rgb, "jpeg")
            msgs.append((stamp, style.color + "/compressed", "sensor_msgs/msg/CompressedImage",
                         T["sensor_msgs/msg/CompressedImage"](header=header(stamp, style.optical), format=fmt,
                                                              data=np.frombuffer(data, np.uint8))))
            fmt, data = image_codec.encode_compressed_depth(depth, style.depth_encoding)
            msgs.append((stamp, style.depth + "/compressedDepth", "sensor_msgs/msg/CompressedImage",
                         T["sensor_msgs/msg/CompressedImage"](header=header(stamp, style.optical), format=fmt,
                                                              data=np.frombuffer(data, np.uint8))))
        else:
            pixels = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1],
                      "bgra8": np.dstack([rgb[:, :, ::-1], np.full((h, w), 255, np.uint8)])}[style.encoding]
            msgs.append((stamp, style.color, "sensor_msgs/msg/Image", T["sensor_msgs/msg/Image"](
                header=header(stamp, style.optical), height=h, width=w, encoding=style.encoding, is_bigendian=0,
                step=w * pixels.shape[2], data=np.ascontiguousarray(pixels).reshape(-1))))
            if style.depth_encoding == "16UC1":
                d = np.round(depth * 1000.0).astype(np.uint16)
            else:
                d = np.where(depth > 0, depth, np.nan).astype(np.float32)  # ZED: NaN where unknown
            msgs.append((stamp, style.depth, "sensor_msgs/msg/Image", T["sensor_msgs/msg/Image"](
                header=header(stamp, style.optical), height=h, width=w, encoding=style.depth_encoding,
                is_bigendian=0, step=w * d.itemsize, data=np.frombuffer(d.tobytes(), np.uint8).copy())))
        # the motion as the robot's odometry: odom -> base_link, with the camera riding on the base
        T_odom_base = invert(seq.pose_at(0) @ invert(T_base_optical)) @ (seq.pose_at(i) @ invert(T_base_optical))
        msgs.append((stamp, "/tf", "tf2_msgs/msg/TFMessage", T["tf2_msgs/msg/TFMessage"](
            transforms=[transform("odom", "base_link", T_odom_base, stamp)])))
    msgs.sort(key=lambda m: m[0])
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        conns: dict[str, object] = {}
        for t, topic, msgtype, m in msgs:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(conns[topic], t, ts.serialize_cdr(m, msgtype))
    return path


def write_all(out: Path) -> dict[str, Path]:
    """Every style, raw (MCAP) and compressed (the RealSense one in sqlite3 too)."""
    paths = {}
    for name, style in STYLES.items():
        paths[name] = write_recording(out, style)
        paths[f"{name}_compressed"] = write_recording(out, style, compressed=True)
    paths["realsense_db3"] = write_recording(out, STYLES["realsense"], storage="sqlite3")
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    a = p.parse_args(argv)
    for name, path in write_all(a.out).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["STYLES", "Style", "write_all", "write_recording"]
