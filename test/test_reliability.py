"""Bad input, garbage camera topics, bad model output and injected faults: every request gets
exactly one answer with a clear status, nothing crashes, the node keeps serving."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vlm3_ros.camera import CameraInfoData, CameraModel
from vlm3_ros.inference.scheduler import InferenceWorker
from vlm3_ros.inference.types import BackendBusy, DeadlineExceeded
from vlm3_ros.pipeline import Frame, Pipeline, PointCode, RequestError
from vlm3_ros.testing.scripted_backend import ScriptedBackend

NODE = "/vlm3_perception"


# ============================================================ service bad-input matrix (real node)
def _frame_sel(kind: str, bag_truth):
    from vlm3_ros.msg import FrameSelector
    from vlm3_ros.nodes import conversions as cv

    images, _, _ = bag_truth
    if kind == "latest":
        return FrameSelector(mode=FrameSelector.LATEST)
    if kind == "unknown":
        return FrameSelector(mode=FrameSelector.BY_STAMP, stamp=cv.to_time(42))
    return FrameSelector(mode=FrameSelector.BY_STAMP, stamp=cv.to_time(images[2].stamp_ns))


def _explicit(width=64, height=48, encoding="rgb8", data_len=None, info_w=None, fx=50.0, step=None):
    from sensor_msgs.msg import CameraInfo, Image

    from vlm3_ros.msg import FrameSelector

    ch = {"rgb8": 3, "mono8": 1, "yuv422": 2, "bgra8": 4}.get(encoding, 3)
    img = Image(width=width, height=height, encoding=encoding, step=step if step is not None else width * ch)
    img.data = bytes(data_len if data_len is not None else width * height * ch)
    img.header.frame_id = "explicit_cam"
    info = CameraInfo(width=info_w or width, height=height, k=[fx, 0.0, width / 2, 0.0, fx, height / 2, 0.0, 0.0, 1.0],
                      distortion_model="plumb_bob", d=[0.0] * 5)
    return FrameSelector(mode=FrameSelector.EXPLICIT, image=img, camera_info=info)


DEPTH_CASES = [
    # (name, selector spec, pixels, depth_type, expected status name, message needle)
    ("no pixels", "stamp", [], 0, "INVALID_REQUEST", "no pixels"),
    ("too many pixels", "stamp", [(1.0, 1.0)] * 257, 0, "INVALID_REQUEST", "maximum is 256"),
    ("all outside", "stamp", [(-1.0, 5.0), (5.0, 1e6)], 0, "INVALID_REQUEST", "outside"),
    ("nan pixel", "stamp", [(float("nan"), 5.0)], 0, "INVALID_REQUEST", "outside"),
    ("inf pixel", "stamp", [(float("inf"), 5.0)], 0, "INVALID_REQUEST", "outside"),
    ("bad depth type", "stamp", [(5.0, 5.0)], 7, "INVALID_REQUEST", "depth_type"),
    ("unknown stamp", "unknown", [(5.0, 5.0)], 0, "FRAME_NOT_FOUND", "no frame with stamp"),
    ("explicit info size differs", ("explicit", {"info_w": 80}), [(5.0, 5.0)], 0, "INVALID_REQUEST",
     "does not belong"),
    ("explicit zero focal", ("explicit", {"fx": 0.0}), [(5.0, 5.0)], 0, "INVALID_REQUEST", "focal"),
    ("explicit negative focal", ("explicit", {"fx": -3.0}), [(5.0, 5.0)], 0, "INVALID_REQUEST", "focal"),
    ("explicit unsupported encoding", ("explicit", {"encoding": "yuv422"}), [(5.0, 5.0)], 0, "INVALID_REQUEST",
     "encoding"),
    ("explicit truncated data", ("explicit", {"data_len": 100}), [(5.0, 5.0)], 0, "INVALID_REQUEST", "truncated"),
    ("explicit size != data", ("explicit", {"data_len": 64 * 48 * 3 + 999}), [(5.0, 5.0)], 0, "INVALID_REQUEST",
     "do not match"),
    ("explicit step too small", ("explicit", {"step": 10}), [(5.0, 5.0)], 0, "INVALID_REQUEST", "step"),
    ("explicit huge image", ("explicit", {"width": 70000, "height": 70000, "data_len": 10}), [(5.0, 5.0)], 0,
     "INVALID_REQUEST", "maximum"),
]


@pytest.mark.ros
@pytest.mark.parametrize("case", DEPTH_CASES, ids=[c[0] for c in DEPTH_CASES])
def test_get_depth_bad_input_matrix(client, bag_truth, case) -> None:
    from vlm3_ros.msg import Pixel, Status
    from vlm3_ros.srv import GetDepth

    _, sel, pixels, dtype, status, needle = case
    frame = _explicit(**sel[1]) if isinstance(sel, tuple) else _frame_sel(sel, bag_truth)
    req = GetDepth.Request(frame=frame, pixels=[Pixel(x=x, y=y) for x, y in pixels], depth_type=dtype)
    r = client.call(client.depth, req)
    assert not r.success
    assert r.status.code == getattr(Status, status), (r.status.code, r.message)
    assert needle in r.message


SPATIAL_CASES = [
    ("too many regions", 17, "Region [0]?", "regions; the maximum"),
    ("question too long", 1, "Region [0] " + "x" * 2100, "characters"),
    ("region out of range", 1, "Region [3]?", "region 3"),
    ("empty question", 1, "   ", "empty"),
    ("no region named", 1, "How big?", "names no region"),
]


@pytest.mark.ros
@pytest.mark.parametrize("case", SPATIAL_CASES, ids=[c[0] for c in SPATIAL_CASES])
def test_spatial_bad_input_matrix(client, bag_truth, case) -> None:
    from vlm3_ros.msg import Region, Status
    from vlm3_ros.srv import SpatialQuery

    _, n, question, needle = case
    regions = [Region(x_min=1.0, y_min=1.0, x_max=20.0, y_max=20.0) for _ in range(n)]
    r = client.call(client.spatial, SpatialQuery.Request(frame=_frame_sel("stamp", bag_truth), regions=regions,
                                                          question=question))
    assert r.status.code == Status.INVALID_REQUEST and needle in r.message, r.message


@pytest.mark.ros
@pytest.mark.parametrize("box, needle", [((10.0, 10.0, 5.0, 20.0), "x_min < x_max"),
                                         ((float("nan"), 1.0, 5.0, 5.0), "NaN"),
                                         ((0.0, 0.0, 9999.0, 10.0), "x_max <= 640")])
def test_spatial_bad_regions(client, bag_truth, box, needle) -> None:
    from vlm3_ros.msg import Region, Status
    from vlm3_ros.srv import SpatialQuery

    x1, y1, x2, y2 = box
    r = client.call(client.spatial, SpatialQuery.Request(
        frame=_frame_sel("stamp", bag_truth), question="Region [0]?",
        regions=[Region(x_min=x1, y_min=y1, x_max=x2, y_max=y2)]))
    assert r.status.code == Status.INVALID_REQUEST and needle in r.message, r.message


@pytest.mark.ros
def test_pose_and_corr_bad_frames(client, bag_truth) -> None:
    from vlm3_ros.msg import FrameSelector, Status
    from vlm3_ros.srv import EstimatePose, FindCorrespondence

    r = client.call(client.pose, EstimatePose.Request(frame_a=_frame_sel("stamp", bag_truth),
                                                      frame_b=_frame_sel("unknown", bag_truth)))
    assert r.status.code == Status.FRAME_NOT_FOUND
    r = client.call(client.pose, EstimatePose.Request(frame_a=FrameSelector(mode=200), frame_b=FrameSelector()))
    assert r.status.code == Status.INVALID_REQUEST
    r = client.call(client.corr, FindCorrespondence.Request(frame_a=_frame_sel("stamp", bag_truth),
                                                            frame_b=_frame_sel("stamp", bag_truth), pixels_a=[]))
    assert r.status.code == Status.INVALID_REQUEST and "no pixels" in r.message


@pytest.mark.ros
def test_garbage_on_camera_topics_is_counted_and_the_node_keeps_serving(rclpy_context, gt_world, client,
                                                                        bag_truth) -> None:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from vlm3_ros.msg import Pixel, Status
    from vlm3_ros.nodes import conversions as cv
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


# ============================================================ model output and faults (in-process)
def _frame() -> Frame:
    cam = CameraModel.from_camera_info(CameraInfoData.from_intrinsics(64, 48, 50.0, 50.0, 32.0, 24.0))
    return Frame(np.zeros((48, 64, 3), np.uint8), cam, 1, "cam")


@pytest.mark.parametrize("reply, code, needle", [
    ("", PointCode.PARSE_FAILURE, "empty"),
    ("<answer> -2.0 </answer>", PointCode.INVALID_VALUE, "non-positive"),
    ("<answer> 0 </answer>", PointCode.INVALID_VALUE, "non-positive"),
    ("<answer> " + "9" * 500 + " </answer>", PointCode.PARSE_FAILURE, "finite"),
    ("<think>" + "x" * 1_000_000, PointCode.PARSE_FAILURE, "not closed"),
    ("<answer> 1.5 </answer>", PointCode.OK, ""),
])
def test_depth_model_output_matrix(reply: str, code: PointCode, needle: str) -> None:
    pipe = Pipeline({"depth": ScriptedBackend(lambda q, i: reply)})
    r = pipe.depth(_frame(), np.array([[10.0, 10.0]]), "z_depth")
    assert r.codes[0] == code and needle in r.reasons[0]
    assert (np.isfinite(r.depth[0])) == (code == PointCode.OK)


@pytest.mark.parametrize("replies, needle", [
    (["Rotation angle: 400 degrees", "Yaw=+1.0°, Pitch=+0.0°, Roll=+0.0°",
      "unit vector (2.0, 0.0, 0.0).", "Translation distance: 1.0 meters"], "norm"),
    (["Rotation angle: 4 degrees", "Yaw=+1.0°, Pitch=+95.0°, Roll=+0.0°",
      "unit vector (1.0, 0.0, 0.0).", "Translation distance: 1.0 meters"], "pitch"),
])
def test_pose_impossible_values_give_no_pose(replies: list[str], needle: str) -> None:
    pipe = Pipeline({"pose": ScriptedBackend(lambda q, i: replies[i])})
    r = pipe.pose(_frame(), _frame())
    assert r.T_a_b is None and any(needle in v for v in r.reasons.values()), r.reasons


def test_backend_raising_mid_batch_reaches_the_caller_and_the_worker_recovers() -> None:
    calls = {"n": 0}

    def reply(q, i):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA out of memory (injected)")
        return "<answer> 1.0 </answer>"

    pipe = Pipeline({"depth": ScriptedBackend(reply)})
    w = InferenceWorker(max_queue=2)
    threads_before = threading.active_count()
    f = w.submit(lambda: pipe.depth(_frame(), np.array([[1.0, 1.0], [2.0, 2.0]]), "z_depth"), 5.0)
    with pytest.raises(RuntimeError, match="out of memory"):
        f.result(5)
    ok = w.submit(lambda: pipe.depth(_frame(), np.array([[1.0, 1.0]]), "z_depth"), 5.0).result(5)
    assert ok.codes[0] == PointCode.OK  # recovered once the cause went away
    w.stop()
    assert not w.alive and threading.active_count() <= threads_before


def test_full_queue_is_busy_and_stale_jobs_are_dropped() -> None:
    w = InferenceWorker(max_queue=1)
    gate = threading.Event()
    first = w.submit(lambda: gate.wait(5), 5.0)
    time.sleep(0.1)  # first is running
    stale = w.submit(lambda: "ran", 0.05)
    with pytest.raises(BackendBusy):
        w.submit(lambda: "x", 1.0)
    time.sleep(0.2)
    gate.set()
    assert first.result(5) is True
    with pytest.raises(DeadlineExceeded, match="deadline"):
        stale.result(5)
    assert w.stats["busy"] == 1 and w.stats["expired"] == 1
    w.stop()


def test_stopping_the_worker_answers_every_queued_job() -> None:
    w = InferenceWorker(max_queue=4)
    gate = threading.Event()
    running = w.submit(lambda: gate.wait(5), 5.0)
    time.sleep(0.1)
    queued = [w.submit(lambda: 1, 5.0) for _ in range(3)]
    with ThreadPoolExecutor(1) as ex:
        stopper = ex.submit(w.stop)
        time.sleep(0.1)
        gate.set()
        stopper.result(10)
    assert running.result(1) is True
    for q in queued:
        with pytest.raises(BackendBusy):
            q.result(1)


def test_request_limits_in_the_pipeline() -> None:
    pipe = Pipeline({"depth": ScriptedBackend(lambda q, i: "<answer> 1 </answer>")})
    with pytest.raises(RequestError, match="maximum"):
        pipe.depth(_frame(), np.ones((10_000, 2)), "z_depth")
    with pytest.raises(RequestError, match="no pixels"):
        pipe.depth(_frame(), np.zeros((0, 2)), "z_depth")
    from vlm3_ros.inference.types import BackendError

    with pytest.raises(BackendError, match="not enabled"):
        pipe.pose(_frame(), _frame())


# ============================================================ short load run (correctness only)
@pytest.mark.ros
@pytest.mark.model
@pytest.mark.slow
def test_short_load_every_request_answered_once(rclpy_context, tiny_checkpoint, tmp_path) -> None:
    from vlm3_ros.nodes.loadgen import run_load

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
    from vlm3_ros.nodes.client import PerceptionClient
    from vlm3_ros.srv import GetDepth
    from vlm3_ros.testing.processes import NodeProcess

    broken = tmp_path / "broken_ckpt"
    broken.mkdir()
    (broken / "config.json").write_text("{ this is not json")
    ns = "/fault"
    node = NodeProcess("vlm3_ros.nodes.perception_node", [
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
    from vlm3_ros.testing.processes import NodeProcess

    node = NodeProcess("vlm3_ros.nodes.perception_node", [
        "--ros-args", "-r", "__ns:=/fault2", "-p", "backend:=transformers", "-p", "enabled_tasks:=[depth]",
        "-p", "model.depth_path:=/nonexistent/VLM3-depth", "-p", "vo.enabled:=false",
        "-p", "sparse_depth.rate_hz:=0.0", "-p", "image_topic:=/fault2/image"], log_dir=tmp_path).start()
    try:
        node.wait_for_log("autostart: configure failed", timeout=120)
        assert "'/nonexistent/VLM3-depth' is not a directory" in node.log_text()
        assert node.proc is not None and node.proc.poll() is None
    finally:
        node.stop()
