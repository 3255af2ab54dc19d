"""Replay a bag's camera topics (and /tf, /tf_static) as live ROS 2 messages, like ``ros2 bag play``.

``ros2 bag`` is not installable from the package registries here; this player reads rosbag2
(MCAP, sqlite3) and ROS 1 bags with the rosbags library and publishes the camera's Image or
CompressedImage (unchanged), its CameraInfo, its depth (raw or compressedDepth), /tf_static
(latched) and /tf with the recorded header stamps, paced by the recorded log times. Without
topic options it plays the bag's only camera (see ``vlm3-ros inspect``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

import rclpy
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from vlm3_ros.readers.bag import (
    COMPRESSED_TYPES,
    BagError,
    BagReader,
    BagTopics,
    CompressedRecord,
    ImageRecord,
    InfoRecord,
    TfRecord,
    loop_period_ns,
    shifted,
)
from vlm3_ros.readers.bag_contents import TopicRequest, resolve_topics
from vlm3_ros.ros import conversions as cv


class BagPlayer(Node):
    """Publishes a bag's camera (raw or compressed, as recorded), its depth, /tf_static (latched, once)
    and /tf, with the recorded header stamps, paced by the recorded log times."""

    def __init__(self, bag: Path, topics: BagTopics, remap_image: str, remap_info: str, rate: float,
                 loops: int, publish_tf: bool, start_delay: float, min_subscribers: int = 0) -> None:
        super().__init__("vlm3_bag_player")
        self.reader = BagReader(bag, topics)
        self.reader.require("image", "camera_info")
        types = self.reader.topic_types()
        self.qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_img = self.create_publisher(CompressedImage if types[topics.image] in COMPRESSED_TYPES else Image,
                                             remap_image or topics.image, self.qos)
        self.pub_info = self.create_publisher(CameraInfo, remap_info or topics.camera_info, self.qos)
        self.pub_depth = (self.create_publisher(CompressedImage if types.get(topics.depth) in COMPRESSED_TYPES
                                                else Image, topics.depth, self.qos)
                          if topics.depth and topics.depth in types else None)
        self.pub_tf = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100)) if publish_tf else None
        # /tf_static is latched (transient local), as tf2's static broadcaster publishes it
        self.pub_tf_static = self.create_publisher(TFMessage, "/tf_static", QoSProfile(
            depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)) \
            if publish_tf else None
        self.rate = rate
        self.loops = loops
        self.start_delay = start_delay
        self.min_subscribers = min_subscribers
        self.published = {"image": 0, "camera_info": 0, "depth": 0, "tf": 0, "tf_static": 0}
        self.get_logger().info(
            f"playing {bag.name}: image {topics.image} [{types[topics.image].rsplit('/', 1)[-1]}]"
            + (f" as {remap_image}" if remap_image else "") + f", camera_info {topics.camera_info}"
            + (f" as {remap_info}" if remap_info else "") + f", depth {topics.depth if self.pub_depth else 'none'}, "
            + ("/tf_static (latched) and /tf" if publish_tf else "no TF"))

    def wait_for_subscribers(self) -> None:
        """Wait (up to start_delay) until the camera publishers are matched with min_subscribers
        readers each, so the first messages are not published into the void."""
        deadline = time.monotonic() + self.start_delay
        while time.monotonic() < deadline:
            counts = (self.pub_img.get_subscription_count(), self.pub_info.get_subscription_count())
            if self.min_subscribers and min(counts) >= self.min_subscribers:
                STOP.wait(0.5)  # let the readers' side of the match settle too
                return
            if STOP.wait(0.05):
                return
        if self.min_subscribers:
            self.get_logger().warning(f"only {self.pub_img.get_subscription_count()} subscriber(s) on the image "
                                      f"topic after {self.start_delay}s; playing anyway")

    def play(self) -> None:
        records = list(self.reader.records())
        # CameraInfo first at equal log time, so the image it belongs to can pair at once.
        records.sort(key=lambda r: (r.log_time_ns, 0 if r.kind == "camera_info" else 1))
        static = [r.value for r in records if r.kind == "tf_static"]
        if static and self.pub_tf_static is not None:  # latched before anything else, once
            self.pub_tf_static.publish(TFMessage(transforms=[self._transform(e) for e in static]))
            self.published["tf_static"] += len(static)
        self.wait_for_subscribers()
        records = [r for r in records if r.kind != "tf_static"]
        period = loop_period_ns(records)
        first_info = next((r for r in records if r.kind == "camera_info"), None)
        if first_info is not None:  # a driver may log the first image before its CameraInfo
            self._publish(first_info.kind, first_info.value)
        for loop in range(self.loops):
            first_log, t0 = None, time.monotonic()
            for rec in records:
                if STOP.is_set() or not rclpy.ok():
                    return
                if first_log is None:
                    first_log = rec.log_time_ns
                if self.rate > 0:
                    wait = (rec.log_time_ns - first_log) * 1e-9 / self.rate - (time.monotonic() - t0)
                    if wait > 0:
                        STOP.wait(wait)
                        if STOP.is_set():
                            return
                # Each loop continues the timeline (stamps shifted by whole loops), as a camera
                # would: receivers see new frames, not the first loop's stamps again.
                self._publish(rec.kind, shifted(rec.value, loop * period))
            self.get_logger().info(f"loop {loop + 1}/{self.loops} done: {self.published}")

    @staticmethod
    def _transform(e: TfRecord) -> TransformStamped:
        t, q = e.translation, e.rotation_xyzw  # as recorded: receivers validate
        return TransformStamped(header=Header(stamp=cv.to_time(e.stamp_ns), frame_id=e.parent), child_frame_id=e.child,
                                transform=Transform(translation=Vector3(x=t[0], y=t[1], z=t[2]),
                                                    rotation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])))

    def _publish(self, kind: str, value: object) -> None:
        pub = {"image": self.pub_img, "depth": self.pub_depth}.get(kind)
        if isinstance(value, ImageRecord) and pub is not None:
            pub.publish(cv.raw_image_msg(value.stamp_ns, value.frame_id, value.encoding, value.width, value.height,
                                         value.step, value.data, value.is_bigendian))
        elif isinstance(value, CompressedRecord) and pub is not None:  # republished unchanged
            pub.publish(CompressedImage(header=Header(stamp=cv.to_time(value.stamp_ns), frame_id=value.frame_id),
                                        format=value.format, data=value.data))
        elif kind == "camera_info" and isinstance(value, InfoRecord):
            self.pub_info.publish(cv.camera_info_msg(value.info, value.stamp_ns))
        elif kind == "tf" and isinstance(value, TfRecord) and self.pub_tf is not None:
            self.pub_tf.publish(TFMessage(transforms=[self._transform(value)]))
        else:
            return
        self.published[kind] += 1


# Set by Ctrl-C / SIGTERM: playback stops at the next message and the player exits 0. An event,
# not KeyboardInterrupt: an interrupt raised inside rclpy or a decoder, or left pending at exit,
# can end the process by the signal (exit -2) instead of a clean shutdown.
STOP = threading.Event()


def _stop(signum: int, frame: object) -> None:
    STOP.set()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args_ros = rclpy.utilities.remove_ros_args(["x", *argv])[1:]
    p = argparse.ArgumentParser(prog="vlm3-ros play", description=__doc__)
    p.add_argument("bag", type=Path, help="rosbag2 folder (MCAP/sqlite3) or ROS 1 .bag")
    p.add_argument("--image-topic", default=None,
                   help="Image or CompressedImage topic (default: the bag's only camera; see vlm3-ros inspect)")
    p.add_argument("--camera-info-topic", default=None, help="default: the camera_info beside the image topic")
    p.add_argument("--depth-topic", default=None, help="default: the camera's depth partner; '' to not publish depth")
    p.add_argument("--compressed", action="store_true", help="with raw and compressed copies, play the compressed")
    p.add_argument("--publish-image-as", default="", help="publish the image on this topic instead")
    p.add_argument("--publish-camera-info-as", default="", help="publish the CameraInfo on this topic instead")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (0 = as fast as possible)")
    p.add_argument("--loops", type=int, default=1,
                   help="how many times to play the bag (each loop's stamps continue after the previous loop)")
    p.add_argument("--no-tf", action="store_true", help="do not publish /tf and /tf_static")
    p.add_argument("--start-delay", type=float, default=10.0,
                   help="wait at most this long for subscribers before playing (default 10 s)")
    p.add_argument("--min-subscribers", type=int, default=1,
                   help="start as soon as image and camera-info topics each have this many subscribers "
                        "(default 1: the node's; 0 = wait the whole --start-delay)")
    a = p.parse_args(args_ros)
    try:
        topics = resolve_topics(a.bag, TopicRequest(image=a.image_topic, camera_info=a.camera_info_topic,
                                                    depth=a.depth_topic, compressed=True if a.compressed else None))
    except (BagError, OSError) as e:  # one line that says what to fix, no traceback
        print(f"vlm3-ros play: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, _stop)   # rclpy's own handler is off (below): one owner of the signal
    signal.signal(signal.SIGTERM, _stop)
    rclpy.init(args=["x", *argv], signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = BagPlayer(a.bag, topics, a.publish_image_as, a.publish_camera_info_as, a.rate, a.loops, not a.no_tf,
                         a.start_delay, a.min_subscribers)
        node.play()
        if STOP.is_set():
            node.get_logger().info(f"stopped: {node.published}")
    except (BagError, OSError) as e:  # one line that says what to fix, no traceback
        print(f"vlm3-ros play: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C: stop quietly
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
