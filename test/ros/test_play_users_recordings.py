"""`vlm3-ros play` + the node on a RealSense-style recording, over real DDS: the player finds the
camera itself, latches /tf_static and replays /tf, the node resolves its camera extrinsic through
the recorded tree (base_link -> camera_link -> camera_color_frame -> optical) and answers depth,
from raw images and from the compressed stream (``use_compressed``)."""

from __future__ import annotations

import numpy as np
import pytest

from vlm3_ros.readers.bag import BagReader
from vlm3_ros.readers.bag_contents import TopicRequest, resolve_topics
from vlm3_ros.testing.recordings import STYLES
from vlm3_ros.testing.ros_world import spin_until
from vlm3_ros.tools.processes import NodeProcess

pytestmark = pytest.mark.ros
RS = STYLES["realsense"]


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "compressed"])
def test_play_and_node_on_a_realsense_bag(rclpy_context, recordings, tmp_path, compressed: bool) -> None:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from vlm3_ros.msg import FrameSelector, Pixel
    from vlm3_ros.ros.client import PerceptionClient
    from vlm3_ros.srv import GetDepth

    bag = recordings["realsense_compressed" if compressed else "realsense"]
    topics = resolve_topics(bag, TopicRequest())
    ns = "/rs_compressed" if compressed else "/rs_raw"
    node = NodeProcess("vlm3_ros.ros.perception_node", [
        "--ros-args", "-r", f"__ns:={ns}", "-p", "backend:=ground_truth", "-p", f"ground_truth.bag:={bag}",
        "-p", f"ground_truth.depth_topic:={topics.depth}", "-p", f"image_topic:={RS.color}",
        "-p", f"camera_info_topic:={RS.info}", "-p", f"use_compressed:={str(compressed).lower()}",
        "-p", "enabled_tasks:=[depth,pose]", "-p", "vo.publish_tf:=false", "-p", "vo.odom_frame:=rs_odom",
        "-p", "vo.rate_hz:=20.0", "-p", "sparse_depth.rate_hz:=0.0", "-p", "qos_reliability:=reliable"],
        log_dir=tmp_path).start()
    n = rclpy.create_node(f"vlm3_rs_test_{'c' if compressed else 'r'}")
    diags: list = []
    n.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    try:
        node.wait_for_log("]: active", timeout=60)
        # no topic flags: the player picks the bag's camera (the compressed copy in the compressed bag)
        player = NodeProcess("vlm3_ros.ros.bag_player", [str(bag), "--rate", "0.5", "--start-delay", "15"],
                             log_dir=tmp_path).start()
        player.wait_for_log("loop 1/1 done", timeout=60)
        player.stop()
        kind = "CompressedImage" if compressed else "Image"
        assert f"image {topics.image} [{kind}]" in player.log_text() and "/tf_static (latched)" in player.log_text()

        def extrinsic():
            for arr in reversed(diags):
                for st in arr.status:
                    if (st.hardware_id == RS.color and st.name.endswith(": extrinsic")
                            and "xyz_m" in {kv.key for kv in st.values}):
                        return st
            return None

        assert spin_until(n, lambda: extrinsic() is not None, 15), node.log_text()[-2000:]
        st = extrinsic()
        chain = " -> ".join(["base_link", *[c for _, c, _ in RS.links]])
        assert st.message.startswith(f"camera extrinsic from TF: {chain}"), st.message
        xyz = np.array([float(v) for v in {kv.key: kv.value for kv in st.values}["xyz_m"].split()])
        assert np.allclose(xyz, [0.1, 0.015, 0.2], atol=1e-6)  # the recorded links, summed

        c = PerceptionClient(n, f"{ns}/vlm3_perception")
        assert c.wait(20)
        r = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=320.0, y=240.0)]))
        assert r.success, r.message
        # the frame the node answered on (its latest: the bag's last unless the node dropped it
        # under load), by the stamp the reply names; one loop keeps the recorded stamps
        stamp = r.header.stamp.sec * 10**9 + r.header.stamp.nanosec
        depths = BagReader(bag, topics).depth_images()
        nearest = min(depths, key=lambda s: abs(s - stamp))
        assert abs(nearest - stamp) < 50_000_000, (stamp, sorted(depths))
        want = float(depths[nearest].depth_m()[240, 320])
        assert r.depth[0] == pytest.approx(want, rel=0.02)
    finally:
        n.destroy_node()
        node.stop()


def test_ctrl_c_stops_the_player_quietly(recordings, tmp_path) -> None:
    player = NodeProcess("vlm3_ros.ros.bag_player", [str(recordings["zed_compressed"]), "--rate", "0.05",
                                                      "--start-delay", "0", "--min-subscribers", "0"],
                         log_dir=tmp_path).start()
    player.wait_for_log("playing zed_compressed_mcap", timeout=30)
    rc = player.stop()   # SIGINT mid-playback
    assert rc == 0 and "Traceback" not in player.log_text() and "RCLError" not in player.log_text(), player.log_text()


def test_a_bag_the_player_cannot_use_is_one_line(recordings, tmp_path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "vlm3_ros.ros.bag_player", str(recordings["oak"]), "--image-topic",
                        "/camera/rgb/image_color"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "vlm3-ros inspect" in r.stderr
