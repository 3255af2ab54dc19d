"""Hostile input over real DDS against a node in its own process: latched transforms that used to
kill it, runtime parameters that used to be accepted and ignored, a reset while inactive."""

from __future__ import annotations

import time

import pytest

from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.testing.ros_world import served_node, spin_until

pytestmark = pytest.mark.ros
NS = "/hard"
NODE = f"{NS}/vlm3_perception"


@pytest.fixture(scope="module")
def hard(rclpy_context, tmp_path_factory):
    with served_node(NS, ["-p", "backend:=ground_truth", "-p", f"ground_truth.bag:={BAG_PATHS['mcap']}",
                          "-p", "vo.rate_hz:=5.0", "-p", "vo.odom_frame:=hard_odom", "-p", "sparse_depth.rate_hz:=0.0"],
                     tmp_path_factory.mktemp("hard"), "vlm3_hard_test") as (proc, n, c):
        assert c.wait(20)
        yield proc, n, c


def test_latched_transforms_with_a_zero_or_nan_quaternion_or_an_absurd_translation_are_dropped(hard) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Header
    from tf2_msgs.msg import TFMessage

    from vlm3_ros.msg import FrameSelector, Pixel
    from vlm3_ros.srv import GetDepth

    proc, n, c = hard
    pub = n.create_publisher(TFMessage, "/tf_static", QoSProfile(
        depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE))
    nan = float("nan")

    def edge(child: str, t: tuple, q: tuple) -> TransformStamped:
        return TransformStamped(header=Header(frame_id="base_link"), child_frame_id=child, transform=Transform(
            translation=Vector3(x=t[0], y=t[1], z=t[2]), rotation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])))

    diags: list = []
    n.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 20)
    pub.publish(TFMessage(transforms=[edge("zero_q", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)),
                                      edge("nan_q", (0.0, 0.0, 0.0), (nan, 0.0, 0.0, 1.0)),
                                      edge("far", (1e308, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))]))

    def rejected() -> int:
        for arr in reversed(diags):
            for st in arr.status:
                if st.hardware_id == f"{NS}/image" and st.name.endswith(": camera"):
                    return int({kv.key: kv.value for kv in st.values}.get("tf_rejected", 0))
        return 0

    assert spin_until(n, lambda: rejected() >= 3, 15)
    assert proc.proc is not None and proc.proc.poll() is None  # alive
    assert "dropped /tf_static transform 'base_link' -> 'zero_q': zero-norm quaternion" in proc.log_text()
    r = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=320.0, y=240.0)]))
    assert r.success


def test_runtime_parameters_are_validated_and_applied_or_refused(hard) -> None:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    from vlm3_ros.msg import FrameSelector, Pixel, Status
    from vlm3_ros.srv import GetDepth

    _, n, c = hard
    setp = n.create_client(SetParameters, f"{NODE}/set_parameters")
    assert setp.wait_for_service(timeout_sec=10)

    def set_one(name: str, value: ParameterValue):
        return c.call(setp, SetParameters.Request(parameters=[Parameter(name=name, value=value)])).results[0]

    arr = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["fly"])
    r = set_one("enabled_tasks", arr)
    assert not r.successful and "enabled_tasks=['fly']" in r.reason
    ext = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[0.0, 1.0])
    r = set_one("vo.camera_extrinsic", ext)
    assert not r.successful and "7 finite numbers" in r.reason
    far = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY,
                         double_array_value=[1e6, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5])
    r = set_one("vo.camera_extrinsic", far)
    assert not r.successful and "implausible: its translation" in r.reason and "beyond 300 m" in r.reason
    px = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[float("nan"), 1.0])
    r = set_one("sparse_depth.pixels", px)
    assert not r.successful and "finite" in r.reason
    path = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="/models/other")
    r = set_one("model.depth_path", path)
    assert not r.successful and "read at configure" in r.reason and "max_points_per_request" in r.reason
    one = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=1)
    assert set_one("max_points_per_request", one).successful  # applied live
    two = [Pixel(x=320.0, y=240.0), Pixel(x=100.0, y=80.0)]
    r = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=two))
    assert r.status.code == Status.INVALID_REQUEST and "the maximum is 1" in r.message
    assert set_one("max_points_per_request", ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                                                            integer_value=256)).successful


def test_control_characters_in_a_question_are_refused_with_what_to_fix(hard) -> None:
    from vlm3_ros.msg import FrameSelector, Region, Status
    from vlm3_ros.srv import ObjectQuery

    _, _, c = hard
    region = Region(x_min=10.0, y_min=10.0, x_max=100.0, y_max=100.0)
    r = c.call(c.object, ObjectQuery.Request(frame=FrameSelector(), regions=[region],
                                             question="\x1b[2JHow far is Region [0]?"))
    assert r.status.code == Status.INVALID_REQUEST and not r.success
    assert "question holds the control character U+001B at position 0; remove it" in r.message
    # a NUL would be cut off in transport (the node would answer "How far is Region [0]?"): refused before sending
    with pytest.raises(ValueError, match="question holds a NUL character at position 22"):
        c.call(c.object, ObjectQuery.Request(frame=FrameSelector(), regions=[region],
                                             question="How far is Region [0]?\x00 and ignore the rest"))


def test_reset_odometry_while_inactive_is_refused(hard) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from std_srvs.srv import Trigger

    _, n, c = hard
    assert c.call(c.reset, Trigger.Request()).success  # active, VO running
    change = n.create_client(ChangeState, f"{NODE}/change_state")
    assert change.wait_for_service(timeout_sec=10)
    t0 = time.monotonic()
    assert c.call(change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE))).success
    assert time.monotonic() - t0 < 5.0
    r = c.call(c.reset, Trigger.Request())
    assert not r.success and "not active" in r.message
