"""The full path with the real transformers classes: the node loads the tiny UNTRAINED checkpoint
for all four tasks, is fed the bundled bag, and answers every service. The answers are nonsense;
the statuses must say so honestly. Also: lifecycle transitions with the node running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vlm3_ros.testing.ros_world import served_node

pytestmark = [pytest.mark.ros, pytest.mark.model, pytest.mark.slow]
NODE = "/tiny/vlm3_perception"  # own namespace and topics: the session's ground-truth node runs too


@pytest.fixture(scope="module")
def tiny_node(rclpy_context, tiny_checkpoint: Path, tmp_path_factory):
    args = ["-p", "backend:=transformers", "-p", "model.device:=cpu", "-p", "vo.enabled:=false",
            "-p", "sparse_depth.rate_hz:=0.0", "-p", "model.batch_size:=8",
            "-p", "max_new_tokens.depth:=24", "-p", "max_new_tokens.pose:=24", "-p", "max_new_tokens.corr:=16",
            "-p", "max_new_tokens.object:=24"]
    for task in ("depth", "pose", "corr", "object"):
        args += ["-p", f"model.{task}_path:={tiny_checkpoint}"]
    with served_node("/tiny", args, tmp_path_factory.mktemp("tiny_node"), "vlm3_tiny_client",
                     player_args=("--start-delay", "15"), active_timeout=120) as (node, n, c):
        assert "models ready" in node.log_text()
        assert c.wait(30)
        yield node, c, n


def test_depth_runs_end_to_end_and_reports_parse_failures(tiny_node) -> None:
    from vlm3_ros.msg import FrameSelector, Pixel, PointStatus, Status
    from vlm3_ros.srv import GetDepth

    _, c, _ = tiny_node
    resp = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=100.0, y=80.0),
                                                                           Pixel(x=400.0, y=300.0)]))
    assert not resp.success
    assert resp.status.code == Status.PARSE_FAILURE, resp.message
    assert all(s.code == PointStatus.PARSE_FAILURE and s.reason for s in resp.point_status)
    assert all(len(t) > 0 for t in resp.raw_answers)  # the real model generated text
    assert resp.timing.prompt_tokens > 1000 and resp.timing.generated_tokens > 0
    # per-stage timings travel in the response: every stage of the local engine ran
    t = resp.timing
    stages = [t.preprocess_s, t.image_s, t.prefill_s, t.decode_s, t.parse_s, t.convert_s]
    assert all(s > 0 for s in stages), stages
    assert t.image_s + t.prefill_s + t.decode_s <= t.inference_s and t.queue_s >= 0


def test_pose_corr_object_run_end_to_end(tiny_node) -> None:
    from vlm3_ros.msg import FrameSelector, Pixel, Region, Status
    from vlm3_ros.srv import EstimatePose, FindCorrespondence, ObjectQuery

    _, c, _ = tiny_node
    latest = FrameSelector()
    p = c.call(c.pose, EstimatePose.Request(frame_a=latest, frame_b=latest, with_distance=True))
    assert p.status.code == Status.PARSE_FAILURE and "no pose" in p.message
    assert len(p.raw_answers) == 4
    r = c.call(c.corr, FindCorrespondence.Request(frame_a=latest, frame_b=latest, pixels_a=[Pixel(x=5.0, y=5.0)]))
    assert r.status.code == Status.PARSE_FAILURE and r.raw_answers[0]
    s = c.call(c.object, ObjectQuery.Request(frame=latest, question="Is Region [0] taller than Region [1]?",
                                               regions=[Region(x_min=1.0, y_min=1.0, x_max=50.0, y_max=60.0),
                                                        Region(x_min=100.0, y_min=100.0, x_max=300.0, y_max=400.0)]))
    assert s.raw_answer and "bounding box region (" in s.prompt
    assert s.status.code == Status.PARSE_FAILURE or (s.has_quantity or s.has_yes_no)


def test_diagnostics_warn_when_most_answers_do_not_parse(tiny_node) -> None:
    """The untrained model's answers never parse: /diagnostics says so as a WARN, with the counts."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    from vlm3_ros.msg import FrameSelector, Pixel
    from vlm3_ros.srv import GetDepth

    _, c, n = tiny_node
    c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=10.0 + 40 * i, y=30.0) for i in range(8)]))
    diags: list = []
    sub = n.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 20)

    def requests_status():
        return next((st for arr in reversed(diags) for st in arr.status
                     if st.hardware_id == "/tiny/image" and st.name.endswith(": requests")), None)

    deadline = time.monotonic() + 10
    while requests_status() is None and time.monotonic() < deadline:
        rclpy.spin_once(n, timeout_sec=0.1)
    n.destroy_subscription(sub)
    st = requests_status()
    assert st is not None and st.level == DiagnosticStatus.WARN and "did not parse" in st.message
    vals = {kv.key: kv.value for kv in st.values}
    assert float(vals["parse_failure_share"]) == 1.0 and int(vals["replies_parse_failure"]) >= 1


def test_lifecycle_transitions_while_serving(tiny_node) -> None:
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    from vlm3_ros.msg import FrameSelector, Pixel, Status
    from vlm3_ros.srv import GetDepth

    proc, c, n = tiny_node
    change = n.create_client(ChangeState, f"{NODE}/change_state")
    get = n.create_client(GetState, f"{NODE}/get_state")
    assert change.wait_for_service(timeout_sec=10) and get.wait_for_service(timeout_sec=10)

    def transition(tid: int) -> bool:
        return bool(c.call(change, ChangeState.Request(transition=Transition(id=tid)), 120).success)

    assert c.call(get, GetState.Request()).current_state.label == "active"
    # a request in flight while the node deactivates still gets exactly one answer
    many = GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=float(10 + i), y=20.0) for i in range(48)])
    in_flight = c.depth.call_async(many)
    t_end = time.monotonic() + 0.3
    while time.monotonic() < t_end:
        rclpy.spin_once(n, timeout_sec=0.05)
    assert transition(Transition.TRANSITION_DEACTIVATE)
    t_end = time.monotonic() + 120
    while not in_flight.done() and time.monotonic() < t_end:
        rclpy.spin_once(n, timeout_sec=0.05)
    assert in_flight.done()
    # one clear status: answered, or stopped by the deactivation (never an internal error)
    assert in_flight.result().status.code in (Status.PARSE_FAILURE, Status.MODEL_NOT_READY, Status.BUSY)
    assert "internal error" not in in_flight.result().message
    req = GetDepth.Request(frame=FrameSelector(), pixels=[Pixel(x=10.0, y=10.0)])
    r = c.call(c.depth, req)
    assert r.status.code == Status.MODEL_NOT_READY and "not active" in r.message
    assert transition(Transition.TRANSITION_ACTIVATE)  # reloads the models freed on deactivate
    r = c.call(c.depth, req)
    assert r.status.code == Status.PARSE_FAILURE  # served again (the cached frame survived)
    assert proc.proc is not None and proc.proc.poll() is None
    rclpy.spin_once(n, timeout_sec=0.1)
