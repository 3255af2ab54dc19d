"""One inference server per task, as a robot runs the four VLM3 checkpoints: two real
`transformers serve` processes on loopback (tiny UNTRAINED checkpoint), a node whose depth and
pose tasks each use their own server. Configure health-checks both; a server that stops mid-run
gives BACKEND_ERROR for its task only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vlm3_ros.testing.ros_world import play_bag
from vlm3_ros.testing.small_inputs import free_port
from vlm3_ros.tools.processes import NodeProcess

pytestmark = [pytest.mark.ros, pytest.mark.model, pytest.mark.slow]
NS = "/remote"


def _server(checkpoint: Path, log_dir: Path, hf_home: Path) -> tuple[NodeProcess, str]:
    port = free_port()
    proc = NodeProcess("vlm3_ros.testing.serve_offline", [str(checkpoint), "--host", "127.0.0.1", "--port", str(port),
                                                          "--device", "cpu", "--dtype", "float32"],
                       env=dict(os.environ, HF_HOME=str(hf_home)), log_dir=log_dir).start()
    return proc, f"http://127.0.0.1:{port}/v1"


def test_per_task_servers_answer_and_a_stopped_one_is_a_backend_error(rclpy_context, tiny_checkpoint, tmp_path):
    import rclpy

    from vlm3_ros.msg import FrameSelector, Pixel, Status
    from vlm3_ros.ros.client import PerceptionClient
    from vlm3_ros.srv import EstimatePose, GetDepth

    (tmp_path / "hf" / "hub").mkdir(parents=True)
    depth_srv, depth_url = _server(tiny_checkpoint, tmp_path / "depth", tmp_path / "hf")
    pose_srv, pose_url = _server(tiny_checkpoint, tmp_path / "pose", tmp_path / "hf")
    node = None
    n = rclpy.create_node("vlm3_remote_test")
    try:
        depth_srv.wait_for_log("Uvicorn running", timeout=180)
        pose_srv.wait_for_log("Uvicorn running", timeout=180)
        node = NodeProcess("vlm3_ros.ros.perception_node", [
            "--ros-args", "-r", f"__ns:={NS}", "-p", "backend:=remote", "-p", "enabled_tasks:=[depth,pose]",
            "-p", f"remote.depth_url:={depth_url}", "-p", f"remote.pose_url:={pose_url}",
            "-p", "remote.url:=http://127.0.0.1:9/v1",  # no task uses it: the per-task URLs win
            "-p", "remote.retries:=0", "-p", "remote.timeout_s:=60.0", "-p", "vo.enabled:=false",
            "-p", "sparse_depth.rate_hz:=0.0", "-p", "max_new_tokens.depth:=6", "-p", "max_new_tokens.pose:=6",
            "-p", f"image_topic:={NS}/image", "-p", f"camera_info_topic:={NS}/camera_info",
            "-p", "qos_reliability:=reliable"], log_dir=tmp_path).start()
        node.wait_for_log("]: active", timeout=60)
        assert f"remote:{depth_url}" in node.log_text() and f"remote:{pose_url}" in node.log_text()
        play_bag(f"{NS}/image", f"{NS}/camera_info", tmp_path)
        c = PerceptionClient(n, f"{NS}/vlm3_perception")
        assert c.wait(20)
        latest = FrameSelector()
        d = c.call(c.depth, GetDepth.Request(frame=latest, pixels=[Pixel(x=320.0, y=240.0)]), 180)
        p = c.call(c.pose, EstimatePose.Request(frame_a=latest, frame_b=latest, with_distance=True), 180)
        # the untrained model answers noise: each server answered, nothing parsed
        assert d.status.code == Status.PARSE_FAILURE and d.raw_answers[0], d.message
        assert p.status.code == Status.PARSE_FAILURE and len(p.raw_answers) == 4, p.message
        pose_srv.stop()
        p = c.call(c.pose, EstimatePose.Request(frame_a=latest, frame_b=latest), 120)
        assert p.status.code == Status.BACKEND_ERROR and "cannot reach" in p.message and pose_url in p.message
        d = c.call(c.depth, GetDepth.Request(frame=latest, pixels=[Pixel(x=320.0, y=240.0)]), 180)
        assert d.status.code == Status.PARSE_FAILURE  # the depth server still answers
    finally:
        n.destroy_node()
        if node is not None:
            node.stop()
        depth_srv.stop()
        pose_srv.stop()


def test_configure_fails_with_the_unreachable_task_server_named(rclpy_context, tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    node = NodeProcess("vlm3_ros.ros.perception_node", [
        "--ros-args", "-r", "__ns:=/remote_down", "-p", "backend:=remote", "-p", "enabled_tasks:=[depth]",
        "-p", f"remote.depth_url:={url}", "-p", "vo.enabled:=false", "-p", "image_topic:=/remote_down/image"],
        log_dir=tmp_path).start()
    try:
        node.wait_for_log("autostart: configure failed", timeout=60)
        log = node.log_text()
        assert f"remote backend of task(s) depth: server {url} is unreachable" in log and "start it" in log
    finally:
        node.stop()
