"""Test-run setup: loopback DDS and a private ROS_DOMAIN_ID, before anything imports rclpy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vlm3_ros.bag import BagReader
from vlm3_ros.testing import ros_env
from vlm3_ros.testing.processes import NodeProcess
from vlm3_ros.tum import BAG_PATHS

ros_env.apply()

TEST_DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def rclpy_context() -> Iterator[None]:
    """rclpy initialised once for the whole session (tests create their own nodes)."""
    import rclpy

    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    """The tiny UNTRAINED real-architecture checkpoint (built by setup; rebuilt here if missing)."""
    from vlm3_ros.assets import make_test_checkpoint
    from vlm3_ros.testing.ros_env import REPO_ROOT

    return make_test_checkpoint(REPO_ROOT / ".cache" / "vlm3_ros" / "tiny_qwen3_vl")


# ---------------------------------------------------------------- shared ROS world (ground truth)
NODE = "/vlm3_perception"


@pytest.fixture(scope="session")
def gt_world(rclpy_context, tmp_path_factory):
    """Node (GT backend) + recorder + one slow playback of the bag; yields what was recorded."""
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from tf2_msgs.msg import TFMessage

    from vlm3_ros.nodes.recorder import TopicRecorder

    logs = tmp_path_factory.mktemp("gt_world")
    node = NodeProcess("vlm3_ros.nodes.perception_node", [
        "--ros-args", "-p", "backend:=ground_truth", "-p", f"ground_truth.bag:={BAG_PATHS['mcap']}",
        "-p", "image_topic:=/camera/rgb/image_color", "-p", "camera_info_topic:=/camera/rgb/camera_info",
        "-p", "vo.rate_hz:=20.0", "-p", "vo.keyframe_max_frames:=1", "-p", "sparse_depth.rate_hz:=20.0",
        "-p", "sparse_depth.grid_cols:=4", "-p", "sparse_depth.grid_rows:=3", "-p", "camera_timeout_s:=60.0",
        "-p", "vo.use_tf_static:=false",
        # reliable: a frame published right after discovery must not be lost (tests query every frame)
        "-p", "qos_reliability:=reliable"], log_dir=logs).start()
    rec = TopicRecorder("vlm3_test_recorder")
    rec.subscribe(Image, "/camera/rgb/image_color")
    rec.subscribe(CameraInfo, "/camera/rgb/camera_info")
    rec.subscribe(PointCloud2, f"{NODE}/sparse_depth")
    rec.subscribe(Odometry, f"{NODE}/odom")
    rec.subscribe(TFMessage, "/tf")
    rec.start()
    try:
        node.wait_for_log("]: active", timeout=60)
        # 0.8 s of bag played over 8 s: every frame gets a VO and a sparse-depth update.
        player = NodeProcess("vlm3_ros.nodes.bag_player", [str(BAG_PATHS["mcap"]), "--rate", "0.1",
                                                            "--start-delay", "15.0", "--min-subscribers", "2"],
                             log_dir=logs).start()
        player.wait_for_log("loop 1/1 done", timeout=60)
        player.stop()
        rec.wait_for(f"{NODE}/odom", 5, timeout=10)
        yield node, rec
    finally:
        rec.stop()
        node.stop()


@pytest.fixture(scope="session")
def client(rclpy_context, gt_world):
    import rclpy

    from vlm3_ros.nodes.client import PerceptionClient

    n = rclpy.create_node("vlm3_test_client")
    c = PerceptionClient(n, NODE)
    assert c.wait(30), "services did not come up"
    yield c
    n.destroy_node()


@pytest.fixture(scope="session")
def bag_truth():
    r = BagReader(BAG_PATHS["mcap"])
    images = [rec.value for rec in r.records(("image",))]
    depth = {s: rec.depth_m() for s, rec in r.depth_images().items()}
    return images, depth, r.trajectory()


