"""Request merging: queued jobs of one key run in one call, results go back to their callers,
limits and cancellation hold; in the serving core, concurrent depth requests on one frame reach
the backend as one batch and each caller gets its own points."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest

from vlm3_ros.runtime import cancel
from vlm3_ros.runtime.cancel import Cancelled, CancelToken
from vlm3_ros.serving.core import FrameRef, PerceptionCore
from vlm3_ros.serving.merging import Mergeable, MergedToken, points_many, split_points
from vlm3_ros.serving.settings import OdometrySettings, ServingSettings
from vlm3_ros.serving.status import StatusCode
from vlm3_ros.serving.worker import InferenceWorker
from vlm3_ros.tasks.pipeline import PipelineSettings
from vlm3_ros.testing.cores import feed, wait_for
from vlm3_ros.testing.scripted_backend import ScriptedBackend


def _blocker(worker: InferenceWorker) -> threading.Event:
    """Occupy the worker until the returned event is set, so later jobs queue up."""
    release, started = threading.Event(), threading.Event()
    worker.submit(lambda: (started.set(), release.wait(10)), 10.0, "blocker")
    assert started.wait(5)
    return release


def test_queued_jobs_of_one_key_run_in_one_call_in_queue_order() -> None:
    w = InferenceWorker(max_queue=8)
    calls: list[list[str]] = []

    def many(payloads: list[str]) -> list[str]:
        calls.append(list(payloads))
        return [p.upper() for p in payloads]

    try:
        release = _blocker(w)
        futs = [w.submit(lambda p=p: many([p])[0], 5.0, p, Mergeable("frame-1", p, many)) for p in ("a", "b")]
        other = w.submit(lambda: many(["x"])[0], 5.0, "x", Mergeable("frame-2", "x", many))
        futs.append(w.submit(lambda: many(["c"])[0], 5.0, "c", Mergeable("frame-1", "c", many)))
        plain = w.submit(lambda: "plain", 5.0, "plain")
        release.set()
        assert [f.result(5) for f in futs] == ["A", "B", "C"]
        assert other.result(5) == "X" and plain.result(5) == "plain"
        assert calls == [["a", "b", "c"], ["x"]]
        assert w.stats["merged"] == 2 and w.stats["completed"] == 6
    finally:
        w.stop()


def test_merging_stops_at_the_size_limit_and_errors_reach_every_caller() -> None:
    w = InferenceWorker(max_queue=8)
    calls: list[list[int]] = []

    def many(payloads: list[int]) -> list[int]:
        calls.append(list(payloads))
        if 99 in payloads:
            raise ValueError("injected")
        return payloads

    try:
        release = _blocker(w)
        futs = [w.submit(lambda n=n: many([n])[0], 5.0, str(n), Mergeable("k", n, many, size=3, limit=7))
                for n in (1, 2, 3)]
        bad = [w.submit(lambda n=n: many([n])[0], 5.0, "bad", Mergeable("e", n, many)) for n in (99, 5)]
        release.set()
        assert [f.result(5) for f in futs] == [1, 2, 3]
        assert calls[:2] == [[1, 2], [3]]          # 3 + 3 <= 7 < 3 + 3 + 3: the third runs alone
        for f in bad:
            with pytest.raises(ValueError, match="injected"):
                f.result(5)
    finally:
        w.stop()


def test_a_merged_run_stops_only_when_every_caller_gave_up() -> None:
    a, b = CancelToken(time.monotonic() + 60, "a"), CancelToken(time.monotonic() + 60, "b")
    merged = MergedToken([a, b])
    a.cancel("caller a gone")
    merged.check()                       # b still waits: keep going
    assert not merged.cancelled
    b.cancel("caller b gone")
    assert merged.cancelled
    with pytest.raises(Cancelled, match="caller a gone; caller b gone"):
        merged.check()
    expired = MergedToken([CancelToken(time.monotonic() - 1, "x"), CancelToken(time.monotonic() - 1, "y")])
    with pytest.raises(Cancelled, match="deadline"):
        expired.check()


@dataclass
class _PointResult:
    values: np.ndarray
    codes: np.ndarray
    raw: list[str]
    timings: dict


def test_split_points_gives_each_request_its_own_points_and_a_copy_of_the_rest() -> None:
    r = _PointResult(np.arange(5.0), np.array([0, 1, 0, 0, 2]), list("abcde"), {"decode_s": 1.0})
    parts = split_points(r, [2, 0, 3])
    assert [p.values.tolist() for p in parts] == [[0.0, 1.0], [], [2.0, 3.0, 4.0]]
    assert [p.raw for p in parts] == [["a", "b"], [], ["c", "d", "e"]]
    assert parts[2].codes.tolist() == [0, 0, 2]
    parts[0].timings["decode_s"] = 9.0
    assert parts[2].timings["decode_s"] == 1.0    # a copy per request: queue times are set per caller
    run = points_many(lambda px: _PointResult(px[:, 0] * 10, np.zeros(len(px)), [""] * len(px), {}))
    out = run([np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [3.0, 0.0]])])
    assert [o.values.tolist() for o in out] == [[10.0], [20.0, 30.0]]


@pytest.mark.parametrize("merge", [True, False])
def test_concurrent_depth_requests_on_one_frame_reach_the_backend_as_one_batch(bag_camera, merge: bool) -> None:
    """Eight callers ask 3 points each while the worker is busy: merged, the backend sees their
    24 questions in one call (one image prefix); each caller gets exactly its own points."""
    seen: list[int] = []
    lock = threading.Lock()

    def reply(q, i) -> str:
        # the depth answer encodes which pixel was asked: x in the prompt -> metres
        x = int(q.text.split("coordinates (")[1].split(",")[0])
        return f"<answer> {1 + x / 1000:.3f} </answer>"

    backend = ScriptedBackend(reply)
    orig = backend.answer

    def answer(questions):
        with lock:
            seen.append(len(questions))
        return orig(questions)

    backend.answer = answer  # type: ignore[method-assign]
    core = PerceptionCore()
    settings = ServingSettings(tasks=("depth",), queue_size=16, merge_requests=merge,
                               vo=OdometrySettings(enabled=False))
    assert core.configure(settings, PipelineSettings(), lambda: {"depth": backend})
    assert core.activate()
    feed(core, bag_camera[:1])
    try:
        assert core.models.worker is not None
        release = _blocker(core.models.worker)
        pixels = [np.array([[10.0 + 70 * k + 20 * j, 50.0 + j] for j in range(3)]) for k in range(8)]
        with ThreadPoolExecutor(8) as ex:
            futs = [ex.submit(core.services.get_depth, FrameRef(), px, 0) for px in pixels]
            assert wait_for(lambda: core.models.worker.queued() == 8)
            release.set()
            replies = [f.result(10) for f in futs]
        assert all(r.code == StatusCode.OK for r in replies), [r.message for r in replies]
        for r in replies:
            assert len(r.result.depth) == 3
            # each caller's own points: the answer encodes the unified x of its pixel, which grows with x
            assert np.all(np.diff(r.result.depth) > 0)
        firsts = [r.result.depth[0] for r in replies]
        assert firsts == sorted(firsts) and len(set(firsts)) == 8
        assert seen == ([24] if merge else [3] * 8)
        assert core.models.worker.stats["merged"] == (7 if merge else 0)
    finally:
        core.cleanup()


def test_cancel_check_inside_a_merged_run_sees_the_merged_token() -> None:
    w = InferenceWorker(max_queue=4)
    seen: list[object] = []

    def many(payloads: list[int]) -> list[int]:
        seen.append(cancel.current())
        return payloads

    try:
        release = _blocker(w)
        futs = [w.submit(lambda: None, 5.0, str(n), Mergeable("k", n, many)) for n in (1, 2)]
        release.set()
        assert [f.result(5) for f in futs] == [1, 2]
        assert isinstance(seen[0], MergedToken)
    finally:
        w.stop()
