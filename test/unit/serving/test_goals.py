"""Long requests as action goals, in-process: depth at many pixels in chunks with each chunk
reported, a cancel that stops the work at its next batch boundary and keeps what was answered,
a goal's deadline, and an object question cancelled mid-generation. A scripted slow TEST DOUBLE
backend (0.02 s per question, a batch boundary before each) stands in for the model."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vlm3_ros.serving.core import FrameRef, PerceptionCore
from vlm3_ros.serving.settings import OdometrySettings, ServingSettings
from vlm3_ros.serving.status import StatusCode
from vlm3_ros.tasks.common import PointCode
from vlm3_ros.tasks.pipeline import PipelineSettings
from vlm3_ros.testing.cores import feed, scripted_core, wait_for
from vlm3_ros.testing.scripted_backend import ScriptedBackend

PER_QUESTION_S = 0.02


@pytest.fixture
def slow_core(bag_camera):
    core, slow = scripted_core("<answer> 2.5 </answer>", PER_QUESTION_S, bag_camera[:1])
    yield core, slow
    core.cleanup()


def _pixels(n: int) -> np.ndarray:
    return np.array([[10.0 + i % 300, 10.0 + i // 300] for i in range(n)])


def test_a_depth_goal_runs_in_chunks_and_reports_each(slow_core) -> None:
    core, _ = slow_core
    chunks: list[tuple[int, int]] = []
    r = core.services.depth_goal(FrameRef(), _pixels(70), 0, 0.0, threading.Event(),
                                 lambda start, part: chunks.append((start, len(part.depth))), chunk_points=32)
    assert r.code == StatusCode.OK and len(r.result.depth) == 70, r.message
    assert chunks == [(0, 32), (32, 32), (64, 6)]
    same = core.services.get_depth(FrameRef(), _pixels(70), 0)  # the service's answer for the same pixels
    assert np.array_equal(r.result.depth, same.result.depth) and r.result.raw == same.result.raw


def test_a_cancelled_goal_stops_within_one_batch_and_keeps_what_was_answered(slow_core) -> None:
    core, _ = slow_core
    stop = threading.Event()
    first_chunk = threading.Event()
    with ThreadPoolExecutor(1) as ex:
        running = ex.submit(core.services.depth_goal, FrameRef(), _pixels(256), 0, 0.0, stop,
                            lambda start, part: first_chunk.set(), 32)
        assert first_chunk.wait(10)
        t0 = time.monotonic()
        stop.set()
        r = running.result(10)
        stopped_s = time.monotonic() - t0
    assert r.code == StatusCode.TIMEOUT and "cancelled by its caller" in r.message, r.message
    assert "point(s) were run before" in r.message
    done = int(np.sum(r.result.codes == PointCode.OK))
    assert 32 <= done < 256 and np.all(r.result.codes[done:] == PointCode.NOT_RUN)
    assert stopped_s < 5 * PER_QUESTION_S + 0.2  # at the next question, not after the chunk's 32
    # the worker is free: the next request runs at once
    nxt = core.services.get_depth(FrameRef(), _pixels(1), 0)
    assert nxt.code == StatusCode.OK and nxt.result.timings.queue_s < 0.1


def test_a_goals_deadline_ends_it_with_its_points_so_far(slow_core) -> None:
    core, _ = slow_core
    r = core.services.depth_goal(FrameRef(), _pixels(256), 0, 1.0, threading.Event(), lambda start, part: None, 32)
    assert r.code == StatusCode.TIMEOUT and "the caller's timeout_s=1" in r.message, r.message
    assert 0 < int(np.sum(r.result.codes == PointCode.OK)) < 256


def test_a_goal_cancelled_before_it_ran_runs_nothing(slow_core) -> None:
    core, slow = slow_core
    stop = threading.Event()
    stop.set()
    r = core.services.depth_goal(FrameRef(), _pixels(8), 0, 0.0, stop, lambda start, part: None)
    assert r.code == StatusCode.TIMEOUT and "cancelled by its caller" in r.message and r.result is None
    assert slow.calls == 0


def test_an_object_goal_is_cancelled_mid_generation(bag_camera) -> None:
    core = PerceptionCore()
    gate = threading.Event()
    slow = ScriptedBackend(lambda q, i: (gate.wait(10), "<answer> 3 meters </answer>")[1])
    settings = ServingSettings(tasks=("object",), request_timeout_s=30.0, vo=OdometrySettings(enabled=False))
    assert core.configure(settings, PipelineSettings(), lambda: {"object": slow}) and core.activate()
    feed(core, bag_camera[:1])
    stop = threading.Event()
    try:
        with ThreadPoolExecutor(1) as ex:
            running = ex.submit(core.services.object_goal, FrameRef(), np.array([[1.0, 1.0, 40.0, 40.0]]),
                                "How far is Region [0]?", [], 0.0, stop)
            assert wait_for(lambda: slow.calls == 1)
            stop.set()
            r = running.result(5)  # answered at once; the work stops at its next boundary
            gate.set()
        assert r.code == StatusCode.TIMEOUT and "cancelled by its caller" in r.message, r.message
    finally:
        gate.set()
        core.cleanup()
