"""A caller's deadline over real DDS with the real transformers classes (the tiny UNTRAINED
checkpoint on CPU): a planner that waits 1 s for 256 depth points and gives up must not keep the
model busy; the node stops the job at its next batch boundary, answers TIMEOUT, and the next
request is served at once (issue 33)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlm3_ros.testing.ros_world import served_node

pytestmark = [pytest.mark.ros, pytest.mark.model, pytest.mark.slow]
BATCH = 8


@pytest.fixture(scope="module")
def tiny_depth(rclpy_context, tiny_checkpoint: Path, tmp_path_factory):
    args = ["-p", "backend:=transformers", "-p", "model.device:=cpu", "-p", "enabled_tasks:=[depth]",
            "-p", "vo.enabled:=false", "-p", "sparse_depth.rate_hz:=0.0", "-p", f"model.batch_size:={BATCH}",
            "-p", "max_new_tokens.depth:=24", "-p", "request_timeout_s:=60.0",
            "-p", f"model.depth_path:={tiny_checkpoint}"]
    with served_node("/deadl", args, tmp_path_factory.mktemp("deadl"), "vlm3_deadline_client",
                     player_args=("--start-delay", "15"), active_timeout=120) as (node, _n, c):
        assert c.wait(30)
        yield node, c


def test_a_callers_one_second_deadline_frees_the_worker_within_one_batch(tiny_depth) -> None:
    from vlm3_ros.msg import FrameSelector, Pixel, Status
    from vlm3_ros.srv import GetDepth

    _, c = tiny_depth
    latest = FrameSelector()
    # one batch of the model: BATCH points, no deadline of the caller's own (the node's 60 s)
    one_batch = c.call(c.depth, GetDepth.Request(frame=latest, pixels=[Pixel(x=10.0 + i, y=20.0)
                                                                      for i in range(BATCH)]), 120)
    assert one_batch.status.code == Status.PARSE_FAILURE, one_batch.message  # untrained: ran, nothing parsed
    batch_s = one_batch.timing.inference_s
    many = [Pixel(x=float(10 + (i % 32) * 19), y=float(10 + (i // 32) * 55)) for i in range(256)]
    r = c.call(c.depth, GetDepth.Request(frame=latest, pixels=many, timeout_s=1.0), retries=0)
    assert r.status.code == Status.TIMEOUT and "within the caller's timeout_s=1" in r.message, r.message
    assert 1.0 <= r.timing.total_s < 1.0 + batch_s
    nxt = c.call(c.depth, GetDepth.Request(frame=latest, pixels=[Pixel(x=320.0, y=240.0)]), 120)
    assert nxt.status.code == Status.PARSE_FAILURE, nxt.message  # answered, not stuck behind the abandoned job
    # it waited for at most the one batch of the abandoned job that was running
    assert nxt.timing.queue_s < batch_s, (nxt.timing.queue_s, batch_s)


def test_vlm3_ros_call_timeout_is_the_requests_deadline(tiny_depth) -> None:
    import os
    import subprocess
    import sys

    pixels = [f"{10 + (i % 32) * 19},{10 + (i // 32) * 55}" for i in range(256)]
    out = subprocess.run([sys.executable, "-m", "vlm3_ros.tools.cli", "call", "--node", "/deadl/vlm3_perception",
                          "--timeout", "1", "depth", *pixels], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert out.returncode == 1, out.stderr
    assert "FAILED [TIMEOUT] get_depth did not finish within the caller's timeout_s=1" in out.stdout, out.stdout
