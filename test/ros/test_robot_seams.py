"""Where the node meets a robot, over real DDS: a params file that survives bring-up, a depth-only
robot, the camera extrinsic composed through a URDF-like TF tree with a moving joint, a bag
replayed in loops, a backward time jump, a stale camera, failure values, the debug image and
markers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vlm3_ros.geometry.pose import make_T, pose_from_tq
from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.testing.ros_world import play_bag, spin_until
from vlm3_ros.tools.processes import NodeProcess

pytestmark = pytest.mark.ros
NS = "/seams"
NODE = f"{NS}/vlm3_perception"
CAM = "seams_cam_optical"       # only this test's tree names it: no other node's /tf can touch it
OPTICAL = (-0.5, 0.5, -0.5, 0.5)


def _statuses(diags: list, hardware_id: str) -> dict[str, object]:
    """The newest status of each part (camera, models, requests, extrinsic) of one node."""
    out: dict[str, object] = {}
    for arr in diags:
        for st in arr.status:
            if st.hardware_id == hardware_id:
                out[st.name.split(": ", 1)[-1]] = st
    return out


def _values(st) -> dict[str, str]:
    return {kv.key: kv.value for kv in st.values}


def _pan(stamp_ns: int) -> np.ndarray:
    """The moving joint: pan_base -> camera_link, a 5 cm arm that pans between 0 and 30 degrees."""
    yaw = 15.0 + 15.0 * np.sin(stamp_ns * 1e-9 * 3.0)
    return make_T(Rotation.from_euler("z", yaw, degrees=True).as_matrix(), [0.05, 0.0, 0.0])


@pytest.fixture(scope="module")
def seams(rclpy_context, tmp_path_factory, bag_truth):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import TransformStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from vlm3_ros.ros import conversions as cv
    from vlm3_ros.ros.client import PerceptionClient

    logs = tmp_path_factory.mktemp("seams")
    node = NodeProcess("vlm3_ros.ros.perception_node", [
        "--ros-args", "-r", f"__ns:={NS}", "-p", "backend:=ground_truth",
        "-p", f"ground_truth.bag:={BAG_PATHS['mcap']}",
        "-p", f"image_topic:={NS}/image", "-p", f"camera_info_topic:={NS}/camera_info", "-p", f"camera_frame:={CAM}",
        "-p", "enabled_tasks:=[depth,pose]", "-p", "vo.rate_hz:=20.0",
        "-p", "vo.keyframe_min_translation_m:=0.0", "-p", "vo.min_baseline_m:=0.0",
        "-p", "sparse_depth.rate_hz:=0.0", "-p", "qos_reliability:=reliable", "-p", "camera_timeout_s:=3.0",
        "-p", "time_jump_s:=0.5", "-p", "vo.odom_frame:=seams_odom"], log_dir=logs).start()
    n = rclpy.create_node("vlm3_seams_test")
    diags: list = []
    n.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    images, _, _ = bag_truth
    t0, t1 = images[0].stamp_ns, images[-1].stamp_ns

    def tf(parent: str, child: str, T: np.ndarray, stamp: int) -> TransformStamped:
        from std_msgs.msg import Header

        return TransformStamped(header=Header(stamp=cv.to_time(stamp), frame_id=parent), child_frame_id=child,
                                transform=cv.transform_msg(T))

    static = n.create_publisher(TFMessage, "/tf_static", QoSProfile(
        depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE))
    dynamic = n.create_publisher(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    # URDF-like: base_link -> pan_base (static) -> camera_link (a moving joint, on /tf) -> optical
    # (static); base_link -> laser is published last, as robot_state_publisher may.
    static.publish(TFMessage(transforms=[
        tf("base_link", "pan_base", make_T(np.eye(3), [0.1, 0.0, 0.25]), 0),
        tf("camera_link", CAM, pose_from_tq(np.zeros(3), np.array(OPTICAL)), 0),
        tf("base_link", "laser", make_T(np.eye(3), [0.2, 0.0, 0.15]), 0)]))
    try:
        node.wait_for_log("]: active", timeout=60)
        # this node's /tf reader, not any other (the session's other nodes subscribe to /tf too)
        assert spin_until(n, lambda: any(e.node_namespace == NS for e in n.get_subscriptions_info_by_topic("/tf")),
                          15)
        spin_until(n, lambda: False, 1.0)  # the reader's side of the match settles too
        # the joint's state every 50 ms over both loops of the replay (each loop continues the
        # clock), sent twice as a joint state publisher keeps sending: /tf is volatile
        for _ in range(2):
            for stamp in range(t0 - 10**9, t1 + 3 * 10**9, 50_000_000):
                dynamic.publish(TFMessage(transforms=[tf("pan_base", "camera_link", _pan(stamp), stamp)]))
            spin_until(n, lambda: False, 0.5)
        play_bag(f"{NS}/image", f"{NS}/camera_info", logs, "--rate", "0.5", loops=2)
        c = PerceptionClient(n, NODE)
        assert c.wait(20)
        yield node, n, c, diags
    finally:
        n.destroy_node()
        node.stop()


def test_both_loops_of_a_replay_are_taken_and_the_extrinsic_composes_the_tree(seams) -> None:
    proc, n, _, diags = seams

    def done() -> bool:
        st = _statuses(diags, f"{NS}/image").get("camera")
        v = _values(st) if st is not None else {}
        return int(v.get("paired_exact", 0)) + int(v.get("paired_fallback", 0)) >= 10

    assert spin_until(n, done, 15), proc.log_text()[-2000:]
    cam = _values(_statuses(diags, f"{NS}/image")["camera"])
    paired = int(cam["paired_exact"]) + int(cam["paired_fallback"])
    assert (paired, int(cam["out_of_order"]), int(cam["duplicates"]), int(cam["time_jumps"])) == (10, 0, 0, 0), cam
    # the extrinsic the node resolved for its newest frame, through the moving joint
    def tf_ok() -> bool:
        st = _statuses(diags, f"{NS}/image").get("extrinsic")
        return st is not None and "xyz_m" in _values(st)

    assert spin_until(n, tf_ok, 15), [s.message for s in _statuses(diags, f"{NS}/image").values()]
    st = _statuses(diags, f"{NS}/image")["extrinsic"]
    assert st.message.startswith(f"camera extrinsic from TF: base_link -> pan_base -> camera_link -> {CAM}")
    assert "includes /tf edges" in st.message and st.level == b"\x00"
    xyz = np.array([float(v) for v in _values(st)["xyz_m"].split()])
    # base -> pan_base (0.1, 0, 0.25) then the joint's 5 cm arm yawed by 0..30 degrees
    stamp = int(_values(_statuses(diags, f"{NS}/image")["camera"]).get("frames_received", 0))
    assert stamp == 10
    assert abs(xyz[2] - 0.25) < 1e-3 and 0.1 + 0.05 * np.cos(np.radians(30)) - 1e-3 <= xyz[0] <= 0.15 + 1e-3
    assert np.hypot(xyz[0] - 0.1, xyz[1]) == pytest.approx(0.05, abs=1e-3)
    q = np.array([float(v) for v in _values(st)["quat_xyzw"].split()])
    assert np.allclose(Rotation.from_quat(q).apply([0, 0, 1])[2], 0.0, atol=1e-6)  # optical z is horizontal
    assert "laser" not in st.message


def test_a_jump_back_in_time_restarts_the_timeline_and_latest_follows(seams, bag_truth) -> None:
    from vlm3_ros.msg import FrameSelector, Pixel
    from vlm3_ros.srv import GetDepth

    proc, n, c, diags = seams
    images, _, _ = bag_truth
    play_bag(f"{NS}/image", f"{NS}/camera_info", Path(proc.log_path).parent, "--rate", "0.5")
    r = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=320.0, y=240.0)]))
    assert r.success and (r.header.stamp.sec, r.header.stamp.nanosec) == divmod(images[-1].stamp_ns, 10**9)

    def jumped() -> bool:
        st = _statuses(diags, f"{NS}/image").get("camera")
        return st is not None and _values(st).get("time_jumps") == "1"

    assert spin_until(n, jumped, 10)
    assert "time jumped back" in proc.log_text() and "visual odometry restarts" in proc.log_text()


def test_a_silent_camera_is_a_warning_that_names_the_topic(seams) -> None:
    _, n, _, diags = seams

    def stale() -> bool:
        st = _statuses(diags, f"{NS}/image").get("camera")
        return st is not None and st.level == b"\x01"

    assert spin_until(n, stale, 10)
    assert f"no image on {NS}/image" in _statuses(diags, f"{NS}/image")["camera"].message


def test_a_failed_pose_is_nan_not_identity(seams) -> None:
    from vlm3_ros.msg import FrameSelector, Status
    from vlm3_ros.ros import conversions as cv
    from vlm3_ros.srv import EstimatePose

    _, _, c, _ = seams
    unknown = FrameSelector(mode=FrameSelector.BY_STAMP, stamp=cv.to_time(42))
    r = c.call(c.pose, EstimatePose.Request(frame_a=unknown, frame_b=FrameSelector()))
    assert r.status.code == Status.FRAME_NOT_FOUND and not r.success
    t, q = r.transform_a_b.translation, r.transform_a_b.rotation
    assert all(np.isnan(v) for v in (t.x, t.y, t.z, q.x, q.y, q.z, q.w, r.distance_m, r.yaw_deg))


def test_debug_image_and_markers_show_what_was_asked_and_answered(seams) -> None:
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import MarkerArray

    from vlm3_ros.msg import FrameSelector, Pixel
    from vlm3_ros.ros import markers
    from vlm3_ros.serving.debug_view import OK_RGB
    from vlm3_ros.srv import GetDepth

    _, n, c, _ = seams
    images: list = []
    arrays: list = []
    n.create_subscription(Image, f"{NODE}/debug_image", images.append, 5)
    n.create_subscription(MarkerArray, f"{NODE}/markers", arrays.append, 5)
    assert spin_until(n, lambda: n.count_publishers(f"{NODE}/debug_image") > 0, 10)
    spin_until(n, lambda: False, 1.0)  # let the node see the subscriptions
    asked = [(320.0, 240.0), (101.0, 83.0)]
    r = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=x, y=y) for x, y in asked]))
    assert r.success
    assert spin_until(n, lambda: images and arrays, 10)
    img = images[-1]
    assert (img.header.stamp, img.header.frame_id) == (r.header.stamp, r.header.frame_id)
    a = np.frombuffer(bytes(img.data), np.uint8).reshape(img.height, img.width, 3)
    for x, y in asked:
        assert tuple(a[int(y), int(x)]) == OK_RGB
    m = next(m for m in arrays[-1].markers if m.ns == markers.DEPTH_NS)
    assert (m.header.stamp, m.header.frame_id) == (r.header.stamp, r.header.frame_id)
    got = np.array([[p.x, p.y, p.z] for p in m.points])
    want = np.array([[p.x, p.y, p.z] for p in r.points])
    assert np.allclose(got, want)


def test_a_params_file_survives_bring_up_and_a_depth_only_robot_runs(rclpy_context, tmp_path) -> None:
    import rclpy
    from rcl_interfaces.srv import GetParameters

    from vlm3_ros.msg import FrameSelector, Pixel, Status
    from vlm3_ros.ros.client import PerceptionClient
    from vlm3_ros.srv import EstimatePose, GetDepth

    f = tmp_path / "robot.yaml"
    f.write_text("/**/vlm3_perception:\n  ros__parameters:\n    backend: ground_truth\n"
                 f"    ground_truth:\n      bag: {BAG_PATHS['mcap']}\n    enabled_tasks: [depth]\n"
                 "    image_topic: /depthbot/camera/image\n    camera_info_topic: /depthbot/camera/info\n"
                 "    model:\n      device: cpu\n    stamp_tolerance_s: 0.03\n")
    node = NodeProcess("vlm3_ros.tools.bringup", [f"params_file:={f}", "namespace:=/depthbot"],
                       log_dir=tmp_path).start()
    n = rclpy.create_node("vlm3_depthbot_test")
    try:
        node.wait_for_log("]: active", timeout=60)
        assert "visual odometry is off: it needs the pose task" in node.log_text()
        get = n.create_client(GetParameters, "/depthbot/vlm3_perception/get_parameters")
        assert get.wait_for_service(timeout_sec=10)
        c = PerceptionClient(n, "/depthbot/vlm3_perception")
        names = ["backend", "image_topic", "enabled_tasks", "model.device", "stamp_tolerance_s"]
        vals = c.call(get, GetParameters.Request(names=names)).values
        assert [vals[0].string_value, vals[1].string_value, list(vals[2].string_array_value), vals[3].string_value,
                vals[4].double_value] == ["ground_truth", "/depthbot/camera/image", ["depth"], "cpu", 0.03]
        play_bag("/depthbot/camera/image", "/depthbot/camera/info", tmp_path)
        assert c.wait(10)
        r = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=320.0, y=240.0)]))
        assert r.success, r.message
        p = c.call(c.pose, EstimatePose.Request(frame_a=FrameSelector(), frame_b=FrameSelector()))
        assert p.status.code == Status.TASK_DISABLED
        assert node.proc is not None and node.proc.poll() is None
    finally:
        n.destroy_node()
        node.stop()
