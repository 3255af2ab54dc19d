"""The serving core in-process (no ROS): frame selection, gating, limits, statuses, deadlines,
exactly-once replies under concurrency, camera faults, the producers and the health summary."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from vlm3_ros.geometry import pose
from vlm3_ros.geometry.camera import CameraInfoData
from vlm3_ros.geometry.odometry import KeyframePolicy
from vlm3_ros.readers.image_codec import ImageDecodeError, to_rgb8
from vlm3_ros.serving.core import FrameMode, FrameRef, HealthLevel, PerceptionCore
from vlm3_ros.serving.settings import OdometrySettings, ServingSettings
from vlm3_ros.serving.status import StatusCode
from vlm3_ros.tasks.pipeline import PipelineSettings
from vlm3_ros.testing.cores import feed, ground_truth_core, wait_for
from vlm3_ros.testing.scripted_backend import ScriptedBackend

LATEST = FrameRef()


def by_stamp(stamp: int) -> FrameRef:
    return FrameRef(FrameMode.BY_STAMP, stamp)


def test_depth_answers_from_the_chosen_frame(gt_core, bag_camera, bag_truth) -> None:
    _, depth, _ = bag_truth
    stamp = bag_camera[2][0]
    px = np.array([[320.0, 240.0], [100.0, 80.0]])
    r = gt_core.services.get_depth(by_stamp(stamp), px, 0)
    assert r.success and r.code == StatusCode.OK and r.message == "2 point(s) answered"
    assert [f.stamp_ns for f in r.frames] == [stamp]
    truth = depth[min(depth, key=lambda s: abs(s - stamp))]
    for (u, v), z in zip(px.astype(int), r.result.depth, strict=True):
        assert abs(z - truth[v, u]) < 0.02 * truth[v, u]
    latest = gt_core.services.get_depth(LATEST, px, 1)
    assert latest.success and latest.frames[0].stamp_ns == bag_camera[-1][0]
    assert np.all(latest.result.depth > latest.result.points[:, 2] - 1e-9)  # range >= z


def test_not_active_and_disabled_tasks(bag_camera) -> None:
    core = ground_truth_core(bag_camera, tasks=("depth",))
    try:
        r = core.services.estimate_pose(LATEST, LATEST, True)
        assert r.code == StatusCode.TASK_DISABLED and "enabled_tasks=['depth']" in r.message
        core.deactivate()
        r = core.services.get_depth(LATEST, np.array([[1.0, 1.0]]), 0)
        assert r.code == StatusCode.MODEL_NOT_READY and "not active" in r.message and r.result is None
    finally:
        core.cleanup()


@pytest.mark.parametrize("ref, code, needle", [
    (FrameRef(FrameMode.BY_STAMP, 42), StatusCode.FRAME_NOT_FOUND, "cache holds 5 frames"),
    (FrameRef(FrameMode.KEYFRAME), StatusCode.FRAME_NOT_FOUND, "no visual-odometry keyframe"),
    (FrameRef(7), StatusCode.INVALID_REQUEST, "is not one of LATEST=0"),
    (FrameRef(FrameMode.EXPLICIT, explicit=lambda: to_rgb8("yuv422", 4, 4, 8, bytes(32))),
     StatusCode.INVALID_REQUEST, "explicit frame: unsupported encoding"),
])
def test_frame_selection_errors(gt_core, ref: FrameRef, code: StatusCode, needle: str) -> None:
    r = gt_core.services.get_depth(ref, np.array([[1.0, 1.0]]), 0)
    assert r.code == code and needle in r.message, r.message


def test_no_frame_yet_says_what_arrived() -> None:
    core = PerceptionCore()
    gt = ScriptedBackend(lambda q, i: "<answer> 1 </answer>")
    assert core.configure(ServingSettings(tasks=("depth",), vo=OdometrySettings(enabled=False)),
                          PipelineSettings(), lambda: {"depth": gt})
    assert core.activate()
    r = core.services.get_depth(LATEST, np.array([[1.0, 1.0]]), 0)
    assert r.code == StatusCode.FRAME_NOT_FOUND and "no usable frame yet from /camera/image_raw" in r.message
    assert "images 0, paired 0" in r.message
    core.cleanup()


def test_object_query_limits(gt_core) -> None:
    box = np.array([[1.0, 1.0, 20.0, 20.0]])
    r = gt_core.services.object_query(LATEST, np.repeat(box, 17, axis=0), "Region [0]?")
    assert r.code == StatusCode.INVALID_REQUEST and "17 regions; the maximum is 16" in r.message
    r = gt_core.services.object_query(LATEST, box, "Region [0] " + "x" * 2100)
    assert r.code == StatusCode.INVALID_REQUEST and "characters" in r.message
    r = gt_core.services.object_query(LATEST, box, "How far is Region [0] from the camera?")
    assert r.code == StatusCode.PARSE_FAILURE and "I cannot answer" in r.result.raw  # the double says so


def test_pose_between_two_frames_matches_ground_truth(gt_core, bag_camera, bag_truth) -> None:
    _, _, traj = bag_truth
    a, b = bag_camera[0][0], bag_camera[4][0]
    r = gt_core.services.estimate_pose(by_stamp(a), by_stamp(b), True)
    assert r.success, r.message
    T_true = pose.invert(traj.interpolate(a * 1e-9)) @ traj.interpolate(b * 1e-9)
    assert pose.rotation_error_deg(T_true[:3, :3], r.result.T_a_b[:3, :3]) < 0.1
    assert np.linalg.norm(T_true[:3, 3] - r.result.T_a_b[:3, 3]) < 0.01


def test_a_slow_job_times_out_and_an_internal_error_is_reported(bag_camera) -> None:
    core = PerceptionCore()
    slow = ScriptedBackend(lambda q, i: "<answer> 1 </answer>", delay_s=0.5)
    settings = ServingSettings(tasks=("depth", "pose"), request_timeout_s=0.2,
                               vo=OdometrySettings(enabled=False))

    def boom(q, i):
        raise KeyError("injected")

    assert core.configure(settings, PipelineSettings(), lambda: {"depth": slow, "pose": ScriptedBackend(boom)})
    assert core.activate()
    feed(core, bag_camera[:1])
    try:
        r = core.services.estimate_pose(LATEST, LATEST, True)
        assert r.code == StatusCode.BACKEND_ERROR and "internal error KeyError" in r.message
        r = core.services.get_depth(LATEST, np.array([[1.0, 1.0]]), 0)
        assert r.code == StatusCode.TIMEOUT and "request_timeout_s=0.2" in r.message
    finally:
        core.cleanup()


def test_concurrent_requests_each_get_exactly_one_reply(bag_camera) -> None:
    core = ground_truth_core(bag_camera, queue_size=2)
    try:
        with ThreadPoolExecutor(24) as ex:
            px = np.array([[300.0, 200.0]] * 4)
            replies = list(ex.map(lambda _: core.services.get_depth(LATEST, px, 0), range(24)))
        codes = [r.code for r in replies]
        assert len(replies) == 24 and set(codes) <= {StatusCode.OK, StatusCode.BUSY}
        assert codes.count(StatusCode.OK) >= 1
        w = core.models.worker
        assert w is not None and w.stats["completed"] + w.stats["busy"] == 24
    finally:
        core.cleanup()


def test_garbage_camera_input_is_counted_and_serving_goes_on(gt_core, bag_camera) -> None:
    stamp, frame_id, rgb, _ = bag_camera[-1]
    t_new = stamp + 10**9

    def undecodable() -> np.ndarray:
        raise ImageDecodeError("unsupported encoding 'yuv422'")

    gt_core.camera.on_image(t_new, frame_id, undecodable)
    gt_core.camera.on_camera_info(t_new + 2, CameraInfoData.from_intrinsics(640, 480, 500, 500, 320, 240,
                                                                      frame_id=frame_id))
    gt_core.camera.on_image(t_new + 2, frame_id, lambda: np.zeros((240, 320, 3), np.uint8))   # size != CameraInfo
    gt_core.camera.on_image(stamp, frame_id, lambda: rgb)                                     # duplicate stamp
    gt_core.camera.on_image(bag_camera[0][0], frame_id, lambda: rgb)                          # older than the newest
    v = gt_core.health()[0].values
    assert (v["decode_errors"], v["bad_camera_info"], v["duplicates"], v["out_of_order"]) == (1, 1, 1, 1)
    assert gt_core.services.get_depth(LATEST, np.array([[320.0, 240.0]]), 0).success


def test_sparse_depth_producer_publishes_each_new_frame_once(bag_camera) -> None:
    core = ground_truth_core(bag_camera[:1], sparse_hz=10.0)
    published: list = []
    try:
        assert core.sparse is not None
        core.sparse.tick(lambda r, f: published.append((r, f)))
        assert wait_for(lambda: len(published) == 1)
        core.sparse.tick(lambda r, f: published.append((r, f)))  # same frame: nothing new
        feed(core, bag_camera[1:2])
        core.sparse.tick(lambda r, f: published.append((r, f)))
        assert wait_for(lambda: len(published) == 2)
        r, f = published[-1]
        assert f.stamp_ns == bag_camera[1][0] and r.points.shape == (48, 3)
        finite = np.isfinite(r.points).all(axis=1)
        assert finite.sum() >= 36 and np.array_equal(finite, r.codes == 0)  # NaN only where depth has a hole
        assert core.counters["sparse_published"] == 2
    finally:
        core.cleanup()


def test_odometry_producer_reproduces_the_ground_truth_path(bag_camera, bag_truth) -> None:
    _, _, traj = bag_truth
    # identity extrinsic, no TF: odom is the first camera's frame, for the comparison
    every_frame = KeyframePolicy(min_translation_m=0.0, min_baseline_m=0.0)
    core = ground_truth_core(bag_camera[:1], vo=OdometrySettings(extrinsic=(0, 0, 0, 0, 0, 0, 1), use_tf_static=False,
                                                                 policy=every_frame))
    odom: list[tuple[np.ndarray, int]] = []
    try:
        assert core.vo is not None
        for k in range(len(bag_camera)):
            if k:
                feed(core, bag_camera[k:k + 1])
            n = len(odom)
            core.vo.tick(lambda T, s: odom.append((T, s)))
            assert wait_for(lambda n=n: len(odom) == n + 1), core.counters
        on_key = core.services.get_depth(FrameRef(FrameMode.KEYFRAME), np.array([[320.0, 240.0]]), 0)
        assert on_key.success and on_key.frames[0].stamp_ns in [s for _, s in odom]
        T0 = traj.interpolate(bag_camera[0][0] * 1e-9)
        for T, s in odom:
            truth = pose.invert(T0) @ traj.interpolate(s * 1e-9)
            assert np.linalg.norm(T[:3, 3] - truth[:3, 3]) < 0.02
        ok, msg = core.reset_odometry()
        assert ok and "next frame is the new origin" in msg and core.vo.keyframe is None
    finally:
        core.cleanup()


def _health(core: PerceptionCore) -> dict[str, object]:
    return {h.name: h for h in core.health()}


def test_health_levels(bag_camera) -> None:
    core = PerceptionCore()
    assert _health(core)["camera"].level == HealthLevel.STALE
    assert _health(core)["models"].level == HealthLevel.STALE
    gt = ScriptedBackend(lambda q, i: "")
    settings = ServingSettings(tasks=("depth",), camera_timeout_s=0.1, vo=OdometrySettings(enabled=False))
    assert core.configure(settings, PipelineSettings(), lambda: {"depth": gt}) and core.activate()
    try:
        assert _health(core)["models"].level == HealthLevel.OK and "scripted" in _health(core)["models"].message
        core.camera.on_image(1, "cam", lambda: bag_camera[0][2])        # images arrive, none pairs (no CameraInfo)
        assert _health(core)["camera"].level == HealthLevel.OK     # not yet: a CameraInfo may follow
        time.sleep(0.15)
        core.camera.on_image(2, "cam", lambda: bag_camera[0][2])
        h = _health(core)["camera"]
        assert h.level == HealthLevel.WARN and "none was usable" in h.message and "no CameraInfo" in h.message
        feed(core, bag_camera[:1])
        assert _health(core)["camera"].level == HealthLevel.OK and _health(core)["camera"].message == "receiving"
        time.sleep(0.15)
        h = _health(core)["camera"]
        assert h.level == HealthLevel.WARN and "no image on /camera/image_raw" in h.message
        r = _health(core)["requests"]
        assert r.values["queue_submitted"] == 0 and r.values["parse_failure_share"] == "n/a"
        for _ in range(3):  # the scripted model answers nothing parsable: 9 failed answers
            core.services.get_depth(LATEST, np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), 0)
        r = _health(core)["requests"]
        assert r.level == HealthLevel.WARN and "100% of the last 9 model answers did not parse" in r.message
        assert r.values["replies_parse_failure"] == 3 and r.values["get_depth_p50_ms"] >= 0
    finally:
        core.cleanup()


def test_configure_failure_is_an_error_with_its_reason() -> None:
    core = PerceptionCore()

    def broken() -> dict:
        raise OSError("model path '/nonexistent' is not a directory")

    assert not core.configure(ServingSettings(tasks=("depth",)), PipelineSettings(), broken)
    h = _health(core)["models"]
    assert h.level == HealthLevel.ERROR and "is not a directory" in h.message


def test_a_time_jump_back_restarts_the_cache_and_odometry(bag_camera) -> None:
    core = ground_truth_core(bag_camera, vo=True)
    try:
        odom: list = []
        core.vo.tick(lambda T, s: odom.append(s))
        assert core.vo.keyframe is not None
        shift = -60 * 10**9  # the same recording, a minute earlier: a bag restarted
        feed(core, [(stamp + shift, fid, rgb, info) for stamp, fid, rgb, info in bag_camera[:2]])
        assert core.camera.sync.stats.time_jumps == 1 and core.camera.sync.stats.out_of_order == 0
        assert core.vo.keyframe is None and core.camera.sync.latest().stamp_ns == bag_camera[1][0] + shift
        assert len(core.camera.sync.stamps()) == 2
        r = core.services.get_depth(LATEST, np.array([[320.0, 240.0]]), 0)
        assert r.frames[0].stamp_ns == bag_camera[1][0] + shift
    finally:
        core.cleanup()


def test_bad_transforms_are_dropped_and_the_extrinsic_composes_the_tree(gt_core, bag_camera) -> None:
    from vlm3_ros.serving.core import TfEdge

    stamp, frame_id = bag_camera[0][0], bag_camera[0][1]
    gt_core.camera.on_tf([TfEdge("base_link", "camera_link", 0, (0.1, 0.0, 0.3), (0.0, 0.0, 0.0, 1.0)),
                   TfEdge("camera_link", frame_id, 0, (0.0, 0.0, 0.0), (-0.5, 0.5, -0.5, 0.5)),
                   TfEdge("base_link", "laser", 0, (0.2, 0.0, 0.1), (0.0, 0.0, 1.0, 0.0)),
                   TfEdge("base_link", "bad", 0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)),
                   TfEdge("base_link", "far", 0, (1e308, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))], static=True)
    assert gt_core.counters["tf_rejected"] == 2
    T = gt_core.camera.extrinsic(gt_core.camera.sync.by_stamp(stamp))
    assert np.allclose(T[:3, 3], [0.1, 0.0, 0.3]) and np.allclose(T[:3, 2], [1.0, 0.0, 0.0])  # optical z = forward
    assert gt_core.camera.extrinsic_note.startswith("from TF: base_link -> camera_link -> " + frame_id)


def test_release_while_a_job_waits_answers_it_once(bag_camera) -> None:
    core = PerceptionCore()
    gate = threading.Event()
    slow = ScriptedBackend(lambda q, i: (gate.wait(5), "<answer> 1 </answer>")[1])
    settings = ServingSettings(tasks=("depth",), vo=OdometrySettings(enabled=False))
    assert core.configure(settings, PipelineSettings(), lambda: {"depth": slow}) and core.activate()
    feed(core, bag_camera[:1])
    with ThreadPoolExecutor(3) as ex:
        running = ex.submit(core.services.get_depth, LATEST, np.array([[1.0, 1.0]]), 0)
        assert wait_for(lambda: slow.calls == 1)
        queued = ex.submit(core.services.get_depth, LATEST, np.array([[1.0, 1.0]]), 0)
        time.sleep(0.05)
        stopper = ex.submit(core.deactivate)
        time.sleep(0.05)
        gate.set()
        stopper.result(10)
        assert running.result(10).code == StatusCode.OK
        assert queued.result(10).code in (StatusCode.BUSY, StatusCode.MODEL_NOT_READY)
    assert slow.closed


def test_a_timed_out_request_stops_its_work_and_the_next_one_is_served(bag_camera) -> None:
    core = PerceptionCore()
    slow = ScriptedBackend(lambda q, i: "<answer> 1 </answer>", delay_s=0.1)  # 0.1 s per question
    settings = ServingSettings(tasks=("depth",), request_timeout_s=0.5, vo=OdometrySettings(enabled=False))
    assert core.configure(settings, PipelineSettings(), lambda: {"depth": slow}) and core.activate()
    feed(core, bag_camera[:1])
    try:
        t0 = time.monotonic()
        r = core.services.get_depth(LATEST, np.array([[10.0 + i, 10.0] for i in range(100)]), 0)  # 10 s of work
        assert r.code == StatusCode.TIMEOUT and "stopped at its next batch boundary" in r.message
        r = core.services.get_depth(LATEST, np.array([[10.0, 10.0]]), 0)
        assert r.code == StatusCode.OK and time.monotonic() - t0 < 2.0  # not stuck behind stale work
        assert core.models.worker is not None and core.models.worker.stats["cancelled"] == 1
    finally:
        core.cleanup()


def test_deactivation_stops_the_running_job_and_answers_it_once(bag_camera) -> None:
    core = PerceptionCore()
    slow = ScriptedBackend(lambda q, i: "<answer> 1 </answer>", delay_s=0.1)
    settings = ServingSettings(tasks=("depth",), request_timeout_s=30.0, vo=OdometrySettings(enabled=False))
    assert core.configure(settings, PipelineSettings(), lambda: {"depth": slow}) and core.activate()
    feed(core, bag_camera[:1])
    with ThreadPoolExecutor(2) as ex:
        running = ex.submit(core.services.get_depth, LATEST, np.array([[10.0 + i, 10.0] for i in range(100)]), 0)
        assert wait_for(lambda: slow.calls == 1)
        t0 = time.monotonic()
        core.deactivate()
        assert time.monotonic() - t0 < 1.0  # stopped at a boundary, not after 10 s of work
        r = running.result(5)
    assert r.code == StatusCode.MODEL_NOT_READY and "deactivated while get_depth ran" in r.message
    assert slow.closed  # released only after the job stopped
    core.cleanup()


def test_a_reply_carries_its_stages_and_diagnostics_export_them(gt_core, bag_camera) -> None:
    r = gt_core.services.get_depth(by_stamp(bag_camera[2][0]), np.array([[320.0, 240.0], [100.0, 80.0]]), 0)
    assert r.success
    t = r.result.timings
    stages = t.stages()
    assert list(stages) == ["queue", "unify", "image", "prefill", "decode", "parse", "convert"]
    # the ground-truth double has no image/prefill/decode stages; the rest were measured
    assert t.queue_s > 0 and t.preprocess_s > 0 and t.parse_s > 0 and t.inference_s > 0
    assert t.image_s == t.prefill_s == t.decode_s == 0.0
    assert sum(v for k, v in stages.items() if k != "queue") <= r.total_s
    values = gt_core.services.stats.values()
    for stage in ("queue", "unify", "parse"):
        assert values[f"stage_{stage}_p50_ms"] <= values[f"stage_{stage}_p95_ms"]


def test_live_settings_reach_the_next_request(gt_core) -> None:
    """apply_live: the next request reads the new limits, the point limit from the pipeline settings
    it is given, the region limit from the serving settings."""
    px = np.array([[320.0, 240.0]] * 3)
    box = np.array([[1.0, 1.0, 20.0, 20.0]])
    assert gt_core.services.get_depth(LATEST, px, 0).success
    gt_core.apply_live(replace(gt_core.settings, max_regions=1), PipelineSettings(max_points=2))
    r = gt_core.services.get_depth(LATEST, px, 0)
    assert r.code == StatusCode.INVALID_REQUEST and "3 pixels requested; the maximum is 2" in r.message
    r = gt_core.services.object_query(LATEST, np.repeat(box, 2, axis=0), "Region [0]?")
    assert r.code == StatusCode.INVALID_REQUEST and "2 regions; the maximum is 1" in r.message
    assert gt_core.services.get_depth(LATEST, px[:2], 0).success
