"""Replay a bag's camera topics (and /tf) as live ROS 2 messages, like ``ros2 bag play``.

``ros2 bag`` is not installable from the package registries here; this player reads rosbag2
(MCAP, sqlite3) and ROS 1 bags with the rosbags library and publishes Image, CameraInfo, depth
Image and TFMessage with the recorded header stamps, paced by the recorded log times.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from vlm3_ros.readers.bag import BagReader, BagTopics, ImageRecord, InfoRecord, TfRecord, loop_period_ns, shifted
from vlm3_ros.ros import conversions as cv


class BagPlayer(Node):
    def __init__(self, bag: Path, topics: BagTopics, remap_image: str, remap_info: str, rate: float,
                 loops: int, publish_tf: bool, start_delay: float, min_subscribers: int = 0) -> None:
        super().__init__("vlm3_bag_player")
        self.reader = BagReader(bag, topics)
        self.reader.require("image", "camera_info")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_img = self.create_publisher(Image, remap_image or topics.image, qos)
        self.pub_info = self.create_publisher(CameraInfo, remap_info or topics.camera_info, qos)
        self.pub_depth = self.create_publisher(Image, topics.depth, qos) if topics.depth else None
        self.pub_tf = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100)) if publish_tf else None
        self.rate = rate
        self.loops = loops
        self.start_delay = start_delay
        self.min_subscribers = min_subscribers
        self.published = {"image": 0, "camera_info": 0, "depth": 0, "tf": 0}

    def wait_for_subscribers(self) -> None:
        """Wait (up to start_delay) until the camera publishers are matched with min_subscribers
        readers each, so the first messages are not published into the void."""
        deadline = time.monotonic() + self.start_delay
        while time.monotonic() < deadline:
            counts = (self.pub_img.get_subscription_count(), self.pub_info.get_subscription_count())
            if self.min_subscribers and min(counts) >= self.min_subscribers:
                time.sleep(0.5)  # let the readers' side of the match settle too
                return
            time.sleep(0.05)
        if self.min_subscribers:
            self.get_logger().warning(f"only {self.pub_img.get_subscription_count()} subscriber(s) on the image "
                                      f"topic after {self.start_delay}s; playing anyway")

    def play(self) -> None:
        self.wait_for_subscribers()
        records = list(self.reader.records())
        # CameraInfo first at equal log time, so the image it belongs to can pair at once.
        records.sort(key=lambda r: (r.log_time_ns, 0 if r.kind == "camera_info" else 1))
        period = loop_period_ns(records)
        for loop in range(self.loops):
            first_log, t0 = None, time.monotonic()
            for rec in records:
                if not rclpy.ok():
                    return
                if first_log is None:
                    first_log = rec.log_time_ns
                if self.rate > 0:
                    wait = (rec.log_time_ns - first_log) * 1e-9 / self.rate - (time.monotonic() - t0)
                    if wait > 0:
                        time.sleep(wait)
                # Each loop continues the timeline (stamps shifted by whole loops), as a camera
                # would: receivers see new frames, not the first loop's stamps again.
                self._publish(rec.kind, shifted(rec.value, loop * period))
            self.get_logger().info(f"loop {loop + 1}/{self.loops} done: {self.published}")

    def _publish(self, kind: str, value: object) -> None:
        if kind == "image" and isinstance(value, ImageRecord):
            self.pub_img.publish(cv.raw_image_msg(value.stamp_ns, value.frame_id, value.encoding, value.width,
                                                  value.height, value.step, value.data, value.is_bigendian))
        elif kind == "depth" and isinstance(value, ImageRecord) and self.pub_depth is not None:
            self.pub_depth.publish(cv.raw_image_msg(value.stamp_ns, value.frame_id, value.encoding, value.width,
                                                    value.height, value.step, value.data, value.is_bigendian))
        elif kind == "camera_info" and isinstance(value, InfoRecord):
            self.pub_info.publish(cv.camera_info_msg(value.info, value.stamp_ns))
        elif kind == "tf" and isinstance(value, TfRecord) and self.pub_tf is not None:
            from geometry_msgs.msg import TransformStamped

            self.pub_tf.publish(TFMessage(transforms=[TransformStamped(
                header=Header(stamp=cv.to_time(value.stamp_ns), frame_id=value.parent), child_frame_id=value.child,
                transform=cv.transform_msg(value.T))]))
        else:
            return
        self.published[kind] += 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args_ros = rclpy.utilities.remove_ros_args(["x", *argv])[1:]
    p = argparse.ArgumentParser(prog="vlm3-ros play", description=__doc__)
    p.add_argument("bag", type=Path, help="rosbag2 folder (MCAP/sqlite3) or ROS 1 .bag")
    p.add_argument("--image-topic", default=BagTopics.image)
    p.add_argument("--camera-info-topic", default=BagTopics.camera_info)
    p.add_argument("--depth-topic", default=BagTopics.depth, help="'' to not publish depth")
    p.add_argument("--publish-image-as", default="", help="publish the image on this topic instead")
    p.add_argument("--publish-camera-info-as", default="", help="publish the CameraInfo on this topic instead")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (0 = as fast as possible)")
    p.add_argument("--loops", type=int, default=1,
                   help="how many times to play the bag (each loop's stamps continue after the previous loop)")
    p.add_argument("--no-tf", action="store_true", help="do not publish /tf")
    p.add_argument("--start-delay", type=float, default=10.0,
                   help="wait at most this long for subscribers before playing (default 10 s)")
    p.add_argument("--min-subscribers", type=int, default=1,
                   help="start as soon as image and camera-info topics each have this many subscribers "
                        "(default 1: the node's; 0 = wait the whole --start-delay)")
    a = p.parse_args(args_ros)
    rclpy.init(args=["x", *argv])
    topics = BagTopics(image=a.image_topic, camera_info=a.camera_info_topic, depth=a.depth_topic)
    node = BagPlayer(a.bag, topics, a.publish_image_as, a.publish_camera_info_as, a.rate, a.loops, not a.no_tf,
                     a.start_delay, a.min_subscribers)
    try:
        node.play()
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
