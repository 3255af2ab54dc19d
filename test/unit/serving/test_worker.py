"""The bounded inference worker: failures reach the caller and the worker recovers, a full queue
answers BUSY, stale jobs are dropped, stopping answers every queued job."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vlm3_ros.geometry.camera import CameraInfoData, CameraModel
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.serving.worker import BackendBusy, DeadlineExceeded, InferenceWorker
from vlm3_ros.tasks.common import PointCode
from vlm3_ros.tasks.pipeline import Pipeline
from vlm3_ros.testing.scripted_backend import ScriptedBackend


def _frame() -> Frame:
    cam = CameraModel.from_camera_info(CameraInfoData.from_intrinsics(64, 48, 50.0, 50.0, 32.0, 24.0))
    return Frame(np.zeros((48, 64, 3), np.uint8), cam, 1, "cam")


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


def test_a_running_job_stops_at_its_next_boundary_once_its_deadline_passes() -> None:
    from vlm3_ros.runtime import cancel

    w = InferenceWorker(max_queue=2)
    steps: list[int] = []

    def long_job() -> None:
        for k in range(200):  # 10 s of work in 50 ms batches
            cancel.check()
            steps.append(k)
            time.sleep(0.05)

    t0 = time.monotonic()
    f = w.submit(long_job, 0.3, "long")
    with pytest.raises(cancel.Cancelled, match="long stopped: its deadline passed"):
        f.result(5)
    assert time.monotonic() - t0 < 1.0 and len(steps) < 12
    assert w.submit(lambda: "next", 1.0).result(2) == "next"  # the worker is free again at once
    assert w.stats["cancelled"] == 1
    # the caller can stop it too (what the core does when its wait times out)
    g = w.submit(long_job, 30.0, "long2")
    time.sleep(0.1)
    g.token.cancel("its caller stopped waiting")
    with pytest.raises(cancel.Cancelled, match="its caller stopped waiting"):
        g.result(2)
    assert w.stop(reason="test over")
