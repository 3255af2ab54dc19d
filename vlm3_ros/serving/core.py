"""The perception node's logic without ROS: lifecycle of the models, camera ingest, frame
selection, task gating, inference with deadlines on one worker, the status of every reply, the
sparse-depth and odometry producers and the health summary.

The ROS node (vlm3_ros.ros.perception_node) converts messages into the calls below and replies
back into messages; everything it would otherwise decide is decided here, so it is tested
in-process in milliseconds. Thread model: camera calls, service calls and producer ticks arrive on
different executor threads; model work runs only on the worker thread.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import traceback
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Generic, TypeVar

import numpy as np

from vlm3_ros.contract.question import Backend, BackendError
from vlm3_ros.geometry.camera import CameraInfoData, CameraModelError
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.pose import matrix_to_quat_xyzw, pose_from_tq
from vlm3_ros.geometry.tf_tree import TfError, TfTree, edge_matrix
from vlm3_ros.inference.backend_registry import close_backends
from vlm3_ros.readers.image_codec import ImageDecodeError
from vlm3_ros.runtime.cancel import Cancelled
from vlm3_ros.serving.camera_sync import CameraSync
from vlm3_ros.serving.log import Log
from vlm3_ros.serving.merging import Mergeable, points_many, same_many
from vlm3_ros.serving.producers import OdometryProducer, SparseDepthProducer
from vlm3_ros.serving.settings import ServingSettings
from vlm3_ros.serving.stats import MIN_ANSWERS, PARSE_WARN_SHARE, RequestStats
from vlm3_ros.serving.status import OUTCOME_STATUS, FrameNotFound, NotReady, StatusCode, TaskDisabled, status_of
from vlm3_ros.serving.worker import BackendBusy, DeadlineExceeded, InferenceWorker
from vlm3_ros.tasks.common import RequestError
from vlm3_ros.tasks.corr_task import CorrResult
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.object_task import ObjectResult
from vlm3_ros.tasks.pipeline import Pipeline, PipelineSettings
from vlm3_ros.tasks.pose_task import PoseResult

R = TypeVar("R")


class FrameMode(IntEnum):
    """Mirrors vlm3_ros/msg/FrameSelector."""

    LATEST = 0
    BY_STAMP = 1
    EXPLICIT = 2
    KEYFRAME = 3


# Mirrors GetDepth.Request's Z_DEPTH / RANGE constants.
DEPTH_TYPE_CODES = {0: "z_depth", 1: "range"}


@dataclass(frozen=True)
class TfEdge:
    """One transform of a /tf or /tf_static message, as received (validated by the core)."""

    parent: str
    child: str
    stamp_ns: int
    translation: tuple[float, float, float]
    rotation_xyzw: tuple[float, float, float, float]


@dataclass(frozen=True)
class FrameRef:
    """Which frame a request is about. EXPLICIT carries a decoder of the request's own image
    (run inside the reply's error handling, so a bad image becomes INVALID_REQUEST)."""

    mode: int = FrameMode.LATEST
    stamp_ns: int = 0
    explicit: Callable[[], Frame] | None = None


@dataclass
class Reply(Generic[R]):
    """One service reply: status, message, the task's result (None when it did not run) and the
    frames the request resolved to (for the response headers)."""

    code: StatusCode
    message: str
    result: R | None = None
    frames: list[Frame] = field(default_factory=list)
    total_s: float = 0.0

    @property
    def success(self) -> bool:
        return self.code == StatusCode.OK


class HealthLevel(IntEnum):
    """Mirrors diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class Health:
    """One diagnostic status: ``name`` is a part of the node (camera, models, requests, extrinsic)."""

    name: str
    level: HealthLevel
    message: str
    values: dict[str, Any]


class PerceptionCore:
    def __init__(self, log: Log | None = None) -> None:
        self.log = log or Log()
        self.settings: ServingSettings | None = None
        self.pipeline_settings: PipelineSettings | None = None
        self._open_backends: Callable[[], dict[str, Backend]] | None = None
        self.pipeline: Pipeline | None = None
        self.backends: dict[str, Backend] = {}
        self.worker: InferenceWorker | None = None
        self.sync = CameraSync()
        self.active = False
        self._lock = threading.RLock()
        self.stats: dict[str, float] = {"frames_received": 0, "sparse_published": 0, "sparse_skipped": 0,
                                        "vo_updates": 0, "vo_skipped": 0, "vo_failures": 0, "vo_short_baseline": 0,
                                        "tf_rejected": 0,
                                        "callback_errors": 0}
        self.requests = RequestStats()
        self.last_frame_wall = time.monotonic()     # the last image received (any)
        self.unusable_since: float | None = None    # images arrive but none entered the cache since
        self.config_error = ""                      # why the last configure failed ('' = it did not)
        self._T_base_cam_param = np.eye(4)
        self.tf = TfTree()
        self.extrinsic_note = "no frame yet"
        self.extrinsic_last: np.ndarray | None = None   # the last extrinsic resolved from TF
        self._jumps_seen = 0
        self.sparse: SparseDepthProducer | None = None
        self.vo: OdometryProducer | None = None
        # Called with (service, reply, inputs) after every reply, e.g. to draw the debug image;
        # its failure is logged and never changes the reply.
        self.on_reply: Callable[[str, Reply, dict[str, np.ndarray]], None] | None = None

    # ================================================================== lifecycle
    def configure(self, settings: ServingSettings, pipeline_settings: PipelineSettings,
                  open_backends: Callable[[], dict[str, Backend]]) -> bool:
        """Take the settings and load the models; False (with the reason logged) on failure."""
        self.settings, self.pipeline_settings, self._open_backends = settings, pipeline_settings, open_backends
        self.sync = CameraSync(tolerance_s=settings.stamp_tolerance_s, capacity=settings.frame_cache_size,
                               time_jump_s=settings.time_jump_s)
        self._jumps_seen = 0
        ext = settings.vo.extrinsic
        self._T_base_cam_param = pose_from_tq(np.array(ext[:3]), np.array(ext[3:]))
        return self.load_models()

    def fail_configure(self, reason: str) -> None:
        """Record why configure failed (reported as ERROR in diagnostics) and log it."""
        self.config_error = reason
        self.log.error(reason)

    def load_models(self) -> bool:
        assert self.settings is not None and self._open_backends is not None and self.pipeline_settings is not None
        t0 = time.monotonic()
        try:
            backends = self._open_backends()
        except (BackendError, ValueError, OSError) as e:
            self.fail_configure(f"cannot load the models: {e}")
            return False
        except Exception as e:  # a broken install raises anything; report it, do not crash
            self.fail_configure(f"cannot load the models ({type(e).__name__}): {e}\n{traceback.format_exc()}")
            return False
        self.config_error = ""
        with self._lock:
            self.backends = backends
            self.pipeline = Pipeline(backends, self.pipeline_settings)
            self.worker = InferenceWorker(max_queue=self.settings.queue_size)
        names = sorted({b.name for b in backends.values()})
        self.log.info(f"models ready in {time.monotonic() - t0:.1f}s: {names}")
        if self.settings.backend == "ground_truth":
            self.log.warning("backend ground_truth is a TEST DOUBLE answering from recorded ground truth")
        return True

    def activate(self) -> bool:
        assert self.settings is not None
        if self.pipeline is None and not self.load_models():
            return False
        s = self.settings
        self.sparse = SparseDepthProducer(self, s.sparse) if s.sparse.rate_hz > 0 else None
        self.vo = OdometryProducer(self, s.vo, self._T_base_cam_param) if s.vo.enabled else None
        self.last_frame_wall = time.monotonic()
        self.active = True
        return True

    def deactivate(self) -> None:
        """Stop serving: no new work, producers stopped, models freed (GPU memory)."""
        self.active = False
        self.sparse = None
        self.vo = None
        self.release_models()

    def cleanup(self) -> None:
        self.deactivate()
        self.sync.clear()
        self.settings = None

    def apply_live(self, settings: ServingSettings, max_points: int) -> None:
        """Parameters a running node takes at once (request limits, timeouts, covariances): the
        next request reads them."""
        self.settings = settings
        if self.pipeline_settings is not None:
            self.pipeline_settings = replace(self.pipeline_settings, max_points=max_points)
        pipeline = self.pipeline
        if pipeline is not None and self.pipeline_settings is not None:
            pipeline.settings = self.pipeline_settings

    def release_models(self) -> None:
        """Stop the worker (queued jobs answered BUSY, the running one stopped at its next batch
        boundary), then free the models: never under a job that still runs."""
        with self._lock:
            worker, backends = self.worker, self.backends
            self.worker, self.pipeline, self.backends = None, None, {}
        if worker is not None and not worker.stop(reason="the node is being deactivated"):
            self.log.error("the inference job did not stop within 60 s; its models stay loaded until it ends")
            return
        close_backends(backends)

    # ================================================================== camera
    def safely(self, source: str, fn: Callable[[], object]) -> None:
        """Run a subscription's work; whatever a message does to it is counted and logged (rate
        limited) and the message dropped: no input may take the node down."""
        try:
            fn()
        except Exception as e:
            self.stats["callback_errors"] += 1
            self.log.warning(f"dropped a message on {source}: {type(e).__name__}: {e}", throttle_s=5.0,
                             key=f"callback-{source}")

    @property
    def max_image_pixels(self) -> int:
        return self.settings.max_image_pixels if self.settings else 4096 * 4096

    def on_camera_info(self, stamp_ns: int, info: CameraInfoData) -> None:
        if self.sync.add_camera_info(stamp_ns, info):  # images that waited for it are usable now
            self.unusable_since = None

    def on_image(self, stamp_ns: int, frame_id: str, decode: Callable[[], np.ndarray]) -> Frame | None:
        """Decode (in the caller's thread) and cache; bad images are counted and logged."""
        self.stats["frames_received"] += 1
        self.last_frame_wall = time.monotonic()
        try:
            rgb = decode()
        except (ImageDecodeError, ValueError) as e:
            self.sync.stats.decode_errors += 1
            self.sync.stats.last_error = str(e)
            if self.unusable_since is None:
                self.unusable_since = time.monotonic()
            topic = self.settings.image_topic if self.settings else "?"
            self.log.warning(f"dropping image from {topic}: {e}", throttle_s=5.0, key="decode")
            return None
        frame = self.sync.add_image(stamp_ns, frame_id, rgb)
        if self.sync.stats.time_jumps != self._jumps_seen:
            self._jumps_seen = self.sync.stats.time_jumps
            self.tf.clear_dynamic()
            if self.vo is not None:
                self.vo.reset()
            self.log.warning(f"{self.sync.stats.last_error}; visual odometry restarts at this frame")
        if frame is None and self.sync.stats.last_error:
            self.log.warning(f"image not usable: {self.sync.stats.last_error}", throttle_s=5.0, key="unusable")
        if frame is not None:
            self.unusable_since = None
        elif self.unusable_since is None:
            self.unusable_since = time.monotonic()
        return frame

    def on_tf(self, edges: list[TfEdge], static: bool) -> None:
        """Edges of /tf_static (``static``) or /tf into the transform tree; a bad edge (NaN, zero
        quaternion, absurd translation, a loop) is counted, logged and dropped."""
        for e in edges:
            try:
                T = edge_matrix(e.translation, e.rotation_xyzw)
                if static:
                    self.tf.set_static(e.parent, e.child, T)
                else:
                    self.tf.set_dynamic(e.parent, e.child, T, e.stamp_ns)
            except TfError as err:
                self.stats["tf_rejected"] += 1
                topic = "/tf_static" if static else "/tf"
                self.log.warning(f"dropped {topic} transform {e.parent!r} -> {e.child!r}: {err}", throttle_s=5.0,
                                 key=f"tf-{topic}")

    def camera_frame(self, frame: Frame) -> str:
        return (self.settings.camera_frame if self.settings and self.settings.camera_frame else "") or frame.frame_id

    def extrinsic(self, frame: Frame) -> np.ndarray:
        """T_base_camera for ``frame``: the TF chain from the base frame to the image's frame at its
        stamp (through any tree, static or moving joints), else the vo.camera_extrinsic parameter."""
        s = self.settings
        if s is None or not s.vo.use_tf_static:
            self.extrinsic_note = "from the vo.camera_extrinsic parameter (vo.use_tf_static false)"
            return self._T_base_cam_param
        cam = self.camera_frame(frame)
        try:
            T = self.tf.lookup(s.vo.base_frame, cam, frame.stamp_ns)
        except TfError as e:
            note = (f"no TF chain {s.vo.base_frame} -> {cam}: {e}; using the vo.camera_extrinsic parameter")
            if note != self.extrinsic_note:
                self.log.warning(note, throttle_s=10.0, key="extrinsic")
            self.extrinsic_note = note
            return self._T_base_cam_param
        note = "from TF: " + self.tf.describe(s.vo.base_frame, cam)
        if note != self.extrinsic_note:
            self.log.info(f"camera extrinsic {note}")
        self.extrinsic_note = note
        self.extrinsic_last = T
        return T

    def T_base_cam(self) -> np.ndarray:
        """The extrinsic for the newest frame (the parameter before any frame arrived)."""
        latest = self.sync.latest()
        return self.extrinsic(latest) if latest is not None else self._T_base_cam_param

    # ================================================================== frames
    def select(self, ref: FrameRef) -> Frame:
        assert self.settings is not None
        s = self.settings
        if ref.mode == FrameMode.LATEST:
            f = self.sync.latest()
            if f is None:
                raise FrameNotFound(f"no usable frame yet from {s.image_topic} + {s.camera_info_topic} "
                                    f"({self.sync_summary()})")
            return f
        if ref.mode == FrameMode.BY_STAMP:
            f = self.sync.by_stamp(ref.stamp_ns)
            if f is None:
                stamps = self.sync.stamps()
                span = (f"cache holds {len(stamps)} frames from {stamps[0] * 1e-9:.3f} to {stamps[-1] * 1e-9:.3f}"
                        if stamps else "cache is empty")
                raise FrameNotFound(f"no frame with stamp {ref.stamp_ns * 1e-9:.6f} (+-{s.stamp_tolerance_s}s); "
                                    f"{span}")
            return f
        if ref.mode == FrameMode.EXPLICIT and ref.explicit is not None:
            try:
                return ref.explicit()
            except (ImageDecodeError, CameraModelError) as e:
                raise RequestError(f"explicit frame: {e}") from e
        if ref.mode == FrameMode.KEYFRAME:
            key = self.vo.keyframe if self.vo is not None else None
            if key is None:
                raise FrameNotFound("no visual-odometry keyframe yet (vo.enabled false, or no frame received)")
            return key
        raise RequestError(f"frame selector mode {ref.mode} is not one of LATEST=0, BY_STAMP=1, EXPLICIT=2, "
                           "KEYFRAME=3")

    def sync_summary(self) -> str:
        s = self.sync.stats
        return (f"images {s.images}, paired {s.paired_exact + s.paired_fallback}, without CameraInfo "
                f"{s.no_camera_info}, bad CameraInfo {s.bad_camera_info}, undecodable {s.decode_errors}")

    # ================================================================== requests
    def submit(self, label: str, fn: Callable[[], R], timeout_s: float,
               mergeable: Mergeable | None = None) -> concurrent.futures.Future:
        with self._lock:
            worker = self.worker
        if not self.active or worker is None:
            raise NotReady("node is not active (configuring, loading models, or deactivated)")
        return worker.submit(fn, timeout_s, label, mergeable)

    def infer(self, label: str, fn: Callable[[Pipeline], R],
              merge: tuple[Hashable, Any, int, Callable[[Pipeline, list[Any]], list[R]]] | None = None) -> R:
        """Run ``fn(pipeline)`` on the worker and wait, up to request_timeout_s. ``merge`` = (key,
        payload, size, run_many(pipeline, payloads)): with ``merge_requests`` on, queued requests
        of the same key run in one call (serving.merging)."""
        pipeline = self.pipeline
        if pipeline is None:
            raise NotReady("node is not active (configuring, loading models, or deactivated)")
        timeout = self.settings.request_timeout_s if self.settings else 60.0
        mergeable = None
        if merge is not None and merge[2] >= 1 and self.settings is not None and self.settings.merge_requests:
            key, payload, size, many = merge   # (an empty request runs alone and gets its own error)
            mergeable = Mergeable(key, payload, lambda payloads: many(pipeline, payloads), size,
                                  self.pipeline_settings.max_points)
        fut = self.submit(label, lambda: fn(pipeline), timeout, mergeable)
        try:
            result = fut.result(timeout=timeout)
            timings = getattr(result, "timings", None)
            if timings is not None:
                timings.queue_s = getattr(fut, "queue_s", 0.0)
            return result
        except concurrent.futures.TimeoutError:
            fut.cancel()
            # the job's own deadline stops it at its next batch boundary; make sure it does
            fut.token.cancel(f"its caller stopped waiting after request_timeout_s={timeout}")  # type: ignore[attr-defined]
            raise DeadlineExceeded(f"{label} did not finish within request_timeout_s={timeout}; the work was stopped "
                                   "at its next batch boundary") from None
        except Cancelled as e:
            if not self.active:
                raise NotReady(f"the node was deactivated while {label} ran: {e}") from None
            raise

    def _check_task(self, task: str) -> None:
        if not self.active or self.settings is None:
            raise NotReady("node is not active (configuring, loading models, or deactivated)")
        if task not in self.settings.tasks:
            raise TaskDisabled(f"task '{task}' is disabled (enabled_tasks={list(self.settings.tasks)})")

    def serve(self, name: str, task: str, body: Callable[[list[Frame]], Any],
              inputs: dict[str, np.ndarray] | None = None) -> Reply:
        """Run one request: gate the task, run ``body`` (which appends the frames it resolved and
        returns the task's result), and turn the result or any error into one status."""
        t0 = time.monotonic()
        reply: Reply = Reply(StatusCode.OK, "ok")
        try:
            self._check_task(task)
            reply.result = body(reply.frames)
            outcome, reply.message = reply.result.outcome()
            reply.code = OUTCOME_STATUS[outcome]
        except Exception as e:  # every error becomes a status; none may crash the node
            known = status_of(e)
            if known is not None:
                reply.code, reply.message = known, str(e)
            else:
                reply.code, reply.message = StatusCode.BACKEND_ERROR, f"internal error {type(e).__name__}: {e}"
                self.log.error(f"{name}: {reply.message}\n{traceback.format_exc()}")
        reply.total_s = time.monotonic() - t0
        self.requests.record(name, reply.code, reply.total_s, reply.result)
        if reply.code != StatusCode.OK:
            self.log.info(f"{name}: status {int(reply.code)}: {reply.message}", throttle_s=1.0, key=f"status-{name}")
        if self.on_reply is not None:
            try:
                self.on_reply(name, reply, inputs or {})
            except Exception as e:  # a debug output must never cost a reply
                self.log.warning(f"after {name}: {type(e).__name__}: {e}", throttle_s=10.0, key="on-reply")
        return reply

    def get_depth(self, ref: FrameRef, pixels: np.ndarray, depth_type: int) -> Reply[DepthResult]:
        px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)

        def body(frames: list[Frame]) -> DepthResult:
            frame = self.select(ref)
            frames.append(frame)
            if depth_type not in DEPTH_TYPE_CODES:
                raise RequestError(f"depth_type {depth_type} must be Z_DEPTH=0 or RANGE=1")
            kind = DEPTH_TYPE_CODES[depth_type]
            # the frame object itself (a camera may reuse a stamp for other pixels); queued jobs hold it
            key = ("depth", id(frame), frame.stamp_ns, kind)
            return self.infer("get_depth", lambda p: p.depth(frame, px, kind),  # type: ignore[arg-type]
                              (key, px, len(px), lambda p, ps: points_many(
                                  lambda all_px: p.depth(frame, all_px, kind))(ps)))  # type: ignore[arg-type]

        return self.serve("get_depth", "depth", body, {"pixels": px})

    def estimate_pose(self, ref_a: FrameRef, ref_b: FrameRef, with_distance: bool) -> Reply[PoseResult]:
        def body(frames: list[Frame]) -> PoseResult:
            fa, fb = self.select(ref_a), self.select(ref_b)
            frames += [fa, fb]
            key = ("pose", id(fa), fa.stamp_ns, id(fb), fb.stamp_ns, with_distance)
            return self.infer("estimate_pose", lambda p: p.pose(fa, fb, with_distance),
                              (key, None, 1, lambda p, ps: same_many(lambda: p.pose(fa, fb, with_distance))(ps)))

        return self.serve("estimate_pose", "pose", body)

    def find_correspondence(self, ref_a: FrameRef, ref_b: FrameRef, pixels_a: np.ndarray) -> Reply[CorrResult]:
        def body(frames: list[Frame]) -> CorrResult:
            fa, fb = self.select(ref_a), self.select(ref_b)
            frames += [fa, fb]
            px = np.asarray(pixels_a, dtype=np.float64).reshape(-1, 2)
            key = ("corr", id(fa), fa.stamp_ns, id(fb), fb.stamp_ns)
            return self.infer("find_correspondence", lambda p: p.corr(fa, fb, px),
                              (key, px, len(px), lambda p, ps: points_many(lambda all_px: p.corr(fa, fb, all_px))(ps)))

        return self.serve("find_correspondence", "corr", body)

    def object_query(self, ref: FrameRef, boxes: np.ndarray, question: str) -> Reply[ObjectResult]:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

        def body(frames: list[Frame]) -> ObjectResult:
            assert self.settings is not None
            if len(b) > self.settings.max_regions:
                raise RequestError(f"{len(b)} regions; the maximum is {self.settings.max_regions}")
            if len(question) > self.settings.max_question_chars:
                raise RequestError(f"question has {len(question)} characters; the maximum is "
                                   f"{self.settings.max_question_chars}")
            frame = self.select(ref)
            frames.append(frame)
            return self.infer("object_query", lambda p: p.object(frame, b, question))

        return self.serve("object_query", "object", body, {"boxes": b})

    def reset_odometry(self) -> tuple[bool, str]:
        if not self.active:
            return False, "the node is not active: nothing to reset (activate it first)"
        if self.vo is None:
            return False, "visual odometry is not running (vo.enabled false or node inactive)"
        self.vo.reset()
        return True, "odometry reset: the next frame is the new origin"

    # ================================================================== producers
    def run_in_background(self, label: str, fn: Callable[[Pipeline], R], timeout_s: float, busy: threading.Event,
                          skipped: str, on_result: Callable[[R], None]) -> None:
        """Queue a producer's job without waiting; one at a time per producer (``busy``); a full
        queue or a failure skips this tick (counted in ``stats[skipped]``) instead of piling up."""
        pipeline = self.pipeline
        try:
            fut = self.submit(label, lambda: fn(pipeline), timeout_s) if pipeline is not None else None
        except (BackendBusy, NotReady):
            fut = None
        if fut is None:
            self.stats[skipped] += 1
            return
        busy.set()

        def done(f: concurrent.futures.Future) -> None:
            busy.clear()
            try:
                r = f.result()
            except Exception as e:
                self.stats[skipped] += 1
                self.log.warning(f"{label} skipped: {e}", throttle_s=5.0, key=f"skip-{label}")
                return
            on_result(r)

        fut.add_done_callback(done)

    # ================================================================== health
    def health(self) -> list[Health]:
        """The node's diagnostics: camera first, then models, requests and (with VO) the extrinsic."""
        out = [self._camera_health(), self._models_health(), self._requests_health()]
        if self.settings is not None and self.settings.vo.enabled and self.active:
            ok = self.extrinsic_note.startswith("from TF") or not self.settings.vo.use_tf_static
            values: dict[str, Any] = {"tf_frames": len(self.tf.frames())}
            if ok and self.extrinsic_last is not None:
                T = self.extrinsic_last
                values["xyz_m"] = " ".join(f"{v:.4f}" for v in T[:3, 3])
                values["quat_xyzw"] = " ".join(f"{v:.5f}" for v in matrix_to_quat_xyzw(T[:3, :3]))
            out.append(Health("extrinsic", HealthLevel.OK if ok else HealthLevel.WARN,
                              f"camera extrinsic {self.extrinsic_note}", values))
        return out

    def _camera_health(self) -> Health:
        s = self.settings
        now = time.monotonic()
        silent = now - self.last_frame_wall
        unusable = now - self.unusable_since if self.unusable_since is not None else 0.0
        stats = self.sync.stats
        values: dict[str, Any] = {**stats.as_dict(), **self.stats}
        if not self.active or s is None:
            return Health("camera", HealthLevel.STALE, "inactive", values)
        if silent > s.camera_timeout_s:
            msg = (f"no image on {s.image_topic} for {silent:.1f}s; check the topic name, the driver and the QoS "
                   "(qos_reliability)")
        elif unusable > s.camera_timeout_s:
            msg = (f"images arrive on {s.image_topic} but none was usable for {unusable:.1f}s "
                   f"(paired with {s.camera_info_topic}: {stats.paired_exact + stats.paired_fallback}); last problem: "
                   f"{stats.last_error or 'none'}")
        else:
            return Health("camera", HealthLevel.OK, "receiving", values)
        self.log.warning(msg, throttle_s=10.0, key="camera")
        return Health("camera", HealthLevel.WARN, msg, values)

    def _models_health(self) -> Health:
        values: dict[str, Any] = {}
        for task, b in sorted(self.backends.items()):
            values[f"{task}_backend"] = b.name
            for k, v in (getattr(b, "stats", None) or {}).items():
                values[f"{task}_{k}"] = v
        if self.config_error:
            return Health("models", HealthLevel.ERROR, self.config_error.splitlines()[0], values)
        if self.pipeline is None:
            return Health("models", HealthLevel.STALE, "not loaded (node not configured or inactive)", values)
        names = sorted({b.name for b in self.backends.values()})
        return Health("models", HealthLevel.OK, f"ready: {', '.join(names)}", values)

    def _requests_health(self) -> Health:
        values = self.requests.values()
        worker = self.worker
        if worker is not None:
            values.update({f"queue_{k}": v for k, v in worker.stats.items()})
            values["queue_waiting"] = worker.queued()
        share, n = self.requests.parse_failure_share()
        if share is not None and n >= MIN_ANSWERS and share > PARSE_WARN_SHARE:
            return Health("requests", HealthLevel.WARN,
                          f"{share:.0%} of the last {n} model answers did not parse: a checkpoint for another task, "
                          "an untrained model, or max_new_tokens too small (see raw_answers)", values)
        return Health("requests", HealthLevel.OK, f"{sum(v for k, v in values.items() if k.startswith('replies_'))} "
                      "replies", values)
