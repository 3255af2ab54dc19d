"""A caller's deadline in every request (timeout_s): the work stops at its next batch boundary once
it passes and the reply is TIMEOUT; 0 means the node's request_timeout_s, which also caps it; a
merged run goes on while any of its callers still waits. A scripted slow TEST DOUBLE backend
(0.05 s per question, a batch boundary before each) stands in for the model."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vlm3_ros.serving.core import FrameMode, FrameRef, PerceptionCore
from vlm3_ros.serving.settings import OdometrySettings, ServingSettings
from vlm3_ros.serving.status import StatusCode
from vlm3_ros.tasks.pipeline import PipelineSettings
from vlm3_ros.testing.cores import feed, scripted_core, wait_for
from vlm3_ros.testing.scripted_backend import ScriptedBackend

PER_QUESTION_S = 0.05


def _pixels(n: int) -> np.ndarray:
    return np.array([[10.0 + i % 200, 10.0 + i // 200] for i in range(n)])


@pytest.fixture
def slow_core(bag_camera):
    core, slow = scripted_core("<answer> 1 </answer>", PER_QUESTION_S, bag_camera[:2])
    yield core, slow
    core.cleanup()


def test_a_callers_deadline_frees_the_worker_within_one_batch(slow_core) -> None:
    core, _ = slow_core
    t0 = time.monotonic()
    r = core.services.get_depth(FrameRef(), _pixels(256), 0, timeout_s=0.5)  # 12.8 s of work
    waited = time.monotonic() - t0
    assert r.code == StatusCode.TIMEOUT and "within the caller's timeout_s=0.5" in r.message, r.message
    assert "stopped at its next batch boundary" in r.message and 0.5 <= waited < 1.5
    r = core.services.get_depth(FrameRef(), _pixels(1), 0)
    assert r.code == StatusCode.OK, r.message
    # the next request waited at most one question (one batch) of the abandoned job
    assert r.result.timings.queue_s < 2 * PER_QUESTION_S + 0.2
    assert core.models.worker is not None and core.models.worker.stats["cancelled"] == 1


@pytest.mark.parametrize("timeout_s, needle", [(-1.0, "timeout_s=-1 must be 0"), (math.nan, "timeout_s=nan must be 0"),
                                               (math.inf, "timeout_s=inf must be 0")])
def test_a_timeout_that_is_not_a_duration_is_an_invalid_request(slow_core, timeout_s, needle) -> None:
    core, slow = slow_core
    r = core.services.object_query(FrameRef(), np.array([[1.0, 1.0, 20.0, 20.0]]), "How far is Region [0]?",
                                   timeout_s=timeout_s)
    assert r.code == StatusCode.INVALID_REQUEST and needle in r.message, r.message
    assert slow.calls == 0


def test_zero_is_the_nodes_request_timeout_and_a_longer_one_is_capped_by_it(bag_camera) -> None:
    core = PerceptionCore()
    slow = ScriptedBackend(lambda q, i: "<answer> 1 </answer>", delay_s=PER_QUESTION_S)
    settings = ServingSettings(tasks=("depth",), request_timeout_s=0.4, vo=OdometrySettings(enabled=False))
    assert core.configure(settings, PipelineSettings(), lambda: {"depth": slow}) and core.activate()
    feed(core, bag_camera[:1])
    try:
        for timeout_s in (0.0, 60.0):
            t0 = time.monotonic()
            r = core.services.get_depth(FrameRef(), _pixels(100), 0, timeout_s=timeout_s)
            assert r.code == StatusCode.TIMEOUT and "within request_timeout_s=0.4" in r.message, r.message
            assert time.monotonic() - t0 < 1.5
    finally:
        core.cleanup()


def test_a_merged_run_goes_on_while_one_of_its_callers_still_waits(slow_core, bag_camera) -> None:
    core, slow = slow_core
    first = FrameRef(FrameMode.BY_STAMP, bag_camera[0][0])
    second = FrameRef(FrameMode.BY_STAMP, bag_camera[1][0])
    with ThreadPoolExecutor(3) as ex:
        running = ex.submit(core.services.get_depth, first, _pixels(10), 0)  # 0.5 s: the others queue behind it
        assert wait_for(lambda: slow.calls == 1)
        impatient = ex.submit(core.services.get_depth, second, _pixels(40), 0, 1.0)
        patient = ex.submit(core.services.get_depth, second, _pixels(4), 0)
        assert running.result(10).code == StatusCode.OK
        r_impatient, r_patient = impatient.result(10), patient.result(10)
    assert r_impatient.code == StatusCode.TIMEOUT and "the caller's timeout_s=1" in r_impatient.message
    assert r_patient.code == StatusCode.OK and len(r_patient.result.depth) == 4  # 44 questions ran: 2.2 s > 1 s
    worker = core.models.worker
    assert worker is not None and worker.stats["merged"] == 1 and worker.stats["cancelled"] == 0
