"""Reliability over real DDS, where the behaviour is about DDS: statuses and messages cross the
wire, garbage published on the camera topics is counted in /diagnostics while the node keeps
serving, concurrent clients each get exactly one reply, a short load run, and faults at configure
time of a real node process. The full bad-input matrix runs in-process (test_service_handlers.py)."""

from __future__ import annotations

import time

import pytest

from vlm3_ros.geometry.camera import CameraInfoData


def _frame_sel(kind: str, bag_truth):
    from vlm3_ros.msg import FrameSelector
    from vlm3_ros.ros import conversions as cv

    images, _, _ = bag_truth
    if kind == "unknown":
        return FrameSelector(mode=FrameSelector.BY_STAMP, stamp=cv.to_time(42))
    return FrameSelector(mode=FrameSelector.BY_STAMP, stamp=cv.to_time(images[2].stamp_ns))


@pytest.mark.ros
def test_statuses_and_messages_cross_dds(client, bag_truth) -> None:
    from sensor_msgs.msg import CameraInfo, Image

    from vlm3_ros.msg import FrameSelector, Pixel, Status
    from vlm3_ros.srv import GetDepth

    one = [Pixel(x=5.0, y=5.0)]
    r = client.call(client.depth, GetDepth.Request(frame=_frame_sel("unknown", bag_truth), pixels=one))
    assert not r.success and r.status.code == Status.FRAME_NOT_FOUND and "no frame with stamp" in r.message
    img = Image(width=64, height=48, encoding="rgb8", step=192)
    img.data = bytes(100)
    info = CameraInfo(width=64, height=48, k=[50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0])
    sel = FrameSelector(mode=FrameSelector.EXPLICIT, image=img, camera_info=info)
    r = client.call(client.depth, GetDepth.Request(frame=sel, pixels=[Pixel(x=5.0, y=5.0)]))
    assert r.status.code == Status.INVALID_REQUEST and "truncated" in r.message
    centre = [Pixel(x=320.0, y=240.0)]
    r = client.call(client.depth, GetDepth.Request(frame=_frame_sel("stamp", bag_truth), pixels=centre))
    assert r.success and r.header.stamp == _frame_sel("stamp", bag_truth).stamp and len(r.point_status) == 1


@pytest.mark.ros
def test_garbage_on_camera_topics_is_counted_and_the_node_keeps_serving(rclpy_context, gt_world, client,
                                                                        bag_truth) -> None:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from vlm3_ros.msg import Pixel, Status
    from vlm3_ros.ros import conversions as cv
    from vlm3_ros.srv import GetDepth

    proc, _ = gt_world
    images, _, _ = bag_truth
    n = rclpy.create_node("vlm3_garbage")
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pub_img = n.create_publisher(Image, "/camera/rgb/image_color", qos)
    pub_info = n.create_publisher(CameraInfo, "/camera/rgb/camera_info", qos)
    diags: list = []
    n.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    deadline = time.monotonic() + 10
    while pub_img.get_subscription_count() < 1 and time.monotonic() < deadline:
        rclpy.spin_once(n, timeout_sec=0.05)
    time.sleep(0.5)
    first = images[0]
    t_new = images[-1].stamp_ns + 10**9
    # wrong encoding, truncated data, size change vs CameraInfo, duplicate and out-of-order stamps
    pub_img.publish(cv.raw_image_msg(t_new, first.frame_id, "yuv422", 640, 480, 1280, bytes(640 * 480 * 2)))
    pub_img.publish(cv.raw_image_msg(t_new + 1, first.frame_id, "rgb8", 640, 480, 1920, bytes(100)))
    pub_info.publish(cv.camera_info_msg(CameraInfoData.from_intrinsics(640, 480, 500, 500, 320, 240), t_new + 2,
                                        first.frame_id))
    pub_img.publish(cv.raw_image_msg(t_new + 2, first.frame_id, "rgb8", 320, 240, 960, bytes(320 * 240 * 3)))
    pub_img.publish(cv.raw_image_msg(images[-1].stamp_ns, first.frame_id, first.encoding, first.width,
                                     first.height, first.step, first.data))  # duplicate of the newest stamp
    pub_img.publish(cv.raw_image_msg(images[0].stamp_ns, first.frame_id, first.encoding, first.width,
                                     first.height, first.step, first.data))  # older than the newest
    want = {"decode_errors": 2, "bad_camera_info": 1, "duplicates": 1, "out_of_order": 1}
    got: dict = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rclpy.spin_once(n, timeout_sec=0.1)
        if diags:
            vals = {kv.key: kv.value for kv in diags[-1].status[0].values}
            got = {k: int(vals.get(k, 0)) for k in want}
            if all(got[k] >= v for k, v in want.items()):
                break
    n.destroy_node()
    assert all(got.get(k, 0) >= v for k, v in want.items()), got
    r = client.call(client.depth, GetDepth.Request(frame=_frame_sel("stamp", bag_truth),
                                                   pixels=[Pixel(x=320.0, y=240.0)]))
    assert r.status.code in (Status.OK, Status.PARSE_FAILURE)
    assert proc.proc is not None and proc.proc.poll() is None


@pytest.mark.ros
def test_concurrent_clients_each_get_exactly_one_answer(client, bag_truth) -> None:
    from vlm3_ros.msg import Pixel, Status
    from vlm3_ros.srv import GetDepth

    req = GetDepth.Request(frame=_frame_sel("stamp", bag_truth), pixels=[Pixel(x=300.0, y=200.0)] * 4)
    futs = [client.depth.call_async(req) for _ in range(24)]
    import rclpy

    deadline = time.monotonic() + 60
    while not all(f.done() for f in futs) and time.monotonic() < deadline:
        rclpy.spin_once(client.node, timeout_sec=0.05)
    assert all(f.done() for f in futs)
    codes = [f.result().status.code for f in futs]
    assert set(codes) <= {Status.OK, Status.PARTIAL, Status.PARSE_FAILURE, Status.BUSY}
    assert any(c != Status.BUSY for c in codes)


# ============================================================ short load run (correctness only)
@pytest.mark.ros
@pytest.mark.model
@pytest.mark.slow
def test_short_load_every_request_answered_once(rclpy_context, tiny_checkpoint, tmp_path) -> None:
    from vlm3_ros.tools.loadgen import run_load

    # its own namespace and topics: the shared ground-truth node of the session must not see this stream
    args = ["--ros-args", "-r", "__node:=vlm3_perception", "-r", "__ns:=/load",
            "-p", "image_topic:=/load/image", "-p", "camera_info_topic:=/load/camera_info",
            "-p", "vo.enabled:=false", "-p", "sparse_depth.rate_hz:=0.0", "-p", "inference_queue_size:=2",
            "-p", "backend:=transformers", "-p", "model.device:=cpu", "-p", "enabled_tasks:=[depth]",
            "-p", f"model.depth_path:={tiny_checkpoint}", "-p", "max_new_tokens.depth:=8"]
    r = run_load(args, clients=3, requests_per_client=5, rate_hz=30.0, points=2, max_duration_s=240, log_dir=tmp_path,
                 image_topic="/load/image", info_topic="/load/camera_info", target="/load/vlm3_perception")
    s = r.summary()
    assert not s["errors"], s["errors"]
    assert s["requests"] == 15 and s["answered"] == 15  # exactly one answer each
    assert set(s["statuses"]) <= {"PARSE_FAILURE", "BUSY"}, s["statuses"]
    assert s["frames_published"] > 30 and s["frames_received_by_node"] > 0
    # each non-BUSY answer carried its stages: the tiny model's image, prefill and decode ran
    answered = sum(v for k, v in s["statuses"].items() if k != "BUSY")
    assert all(s["stages"][st]["n"] == answered for st in ("image", "prefill", "decode", "parse"))
    assert all(s["stages"][st]["p50_ms"] > 0 for st in ("unify", "image", "prefill", "decode"))


# ============================================================ faults at configure time (real node)
@pytest.mark.ros
@pytest.mark.model
@pytest.mark.slow
def test_bad_model_path_fails_configure_clearly_and_recovers(rclpy_context, tiny_checkpoint, tmp_path) -> None:
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    from vlm3_ros.msg import FrameSelector, Pixel, Status
    from vlm3_ros.ros.client import PerceptionClient
    from vlm3_ros.srv import GetDepth
    from vlm3_ros.tools.processes import NodeProcess

    broken = tmp_path / "broken_ckpt"
    broken.mkdir()
    (broken / "config.json").write_text("{ this is not json")
    ns = "/fault"
    node = NodeProcess("vlm3_ros.ros.perception_node", [
        "--ros-args", "-r", "__ns:=" + ns, "-p", "backend:=transformers", "-p", "enabled_tasks:=[depth]",
        "-p", f"model.depth_path:={broken}", "-p", "vo.enabled:=false", "-p", "sparse_depth.rate_hz:=0.0",
        "-p", "image_topic:=/fault/image", "-p", "camera_info_topic:=/fault/camera_info",
        "-p", "model.device:=cpu"], log_dir=tmp_path).start()
    n = rclpy.create_node("vlm3_fault_client")
    try:
        node.wait_for_log("autostart: configure failed", timeout=120)
        log = node.log_text()
        assert "cannot load the models" in log and "cannot load checkpoint" in log and str(broken) in log
        c = PerceptionClient(n, f"{ns}/vlm3_perception")
        assert c.wait(20)
        r = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=1.0, y=1.0)]))
        assert r.status.code == Status.MODEL_NOT_READY
        # fix the cause, configure and activate again: the node recovers without a restart
        setp = n.create_client(SetParameters, f"{ns}/vlm3_perception/set_parameters")
        assert setp.wait_for_service(timeout_sec=10)
        val = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(tiny_checkpoint))
        res = c.call(setp, SetParameters.Request(parameters=[Parameter(name="model.depth_path", value=val)]))
        assert res.results[0].successful
        bad = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=0)
        res = c.call(setp, SetParameters.Request(parameters=[Parameter(name="qos_depth", value=bad)]))
        assert not res.results[0].successful and "out of range" in res.results[0].reason
        change = n.create_client(ChangeState, f"{ns}/vlm3_perception/change_state")
        assert change.wait_for_service(timeout_sec=10)
        for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            assert c.call(change, ChangeState.Request(transition=Transition(id=tid)), 120).success
        r = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=1.0, y=1.0)]))
        assert r.status.code == Status.FRAME_NOT_FOUND and "no usable frame" in r.message  # active, no camera
        assert node.proc is not None and node.proc.poll() is None
    finally:
        n.destroy_node()
        node.stop()


@pytest.mark.ros
@pytest.mark.slow
def test_missing_model_directory_is_named(rclpy_context, tmp_path) -> None:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    from vlm3_ros.tools.processes import NodeProcess

    node = NodeProcess("vlm3_ros.ros.perception_node", [
        "--ros-args", "-r", "__ns:=/fault2", "-p", "backend:=transformers", "-p", "enabled_tasks:=[depth]",
        "-p", "model.depth_path:=/nonexistent/VLM3-depth", "-p", "vo.enabled:=false",
        "-p", "sparse_depth.rate_hz:=0.0", "-p", "image_topic:=/fault2/image"], log_dir=tmp_path).start()
    n = rclpy.create_node("vlm3_fault2_diag")
    diags: list = []
    n.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 20)
    try:
        node.wait_for_log("autostart: configure failed", timeout=120)
        assert "'/nonexistent/VLM3-depth' is not a directory" in node.log_text()
        assert node.proc is not None and node.proc.poll() is None

        def models_status():
            return next((st for arr in reversed(diags) for st in arr.status
                         if st.hardware_id == "/fault2/image" and st.name.endswith(": models")
                         and st.level == DiagnosticStatus.ERROR),
                        None)

        deadline = time.monotonic() + 10
        while models_status() is None and time.monotonic() < deadline:
            rclpy.spin_once(n, timeout_sec=0.1)
        st = models_status()
        assert st is not None and "is not a directory" in st.message  # the configure failure, as an ERROR
    finally:
        n.destroy_node()
        node.stop()
