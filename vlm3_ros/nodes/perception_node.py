"""vlm3_ros perception node: camera in, the four VLM3 services, sparse depth cloud, visual odometry.

Lifecycle: configure validates parameters and loads the models, activate subscribes and starts the
publishers' timers, deactivate stops them and frees the models (GPU memory), cleanup drops the
rest. With ``autostart`` (default) the node configures and activates itself at start-up.

Threads: camera callbacks only decode and cache frames (their own callback group). Every service
and timer has its own callback group on a multi-threaded executor and hands model work to one
inference worker with a bounded queue; a full queue answers BUSY, a stale job is dropped.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseWithCovariance, TransformStamped, TwistWithCovariance
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from vlm3_ros.backproject import pack_points
from vlm3_ros.camera import CameraModel, CameraModelError
from vlm3_ros.frame_cache import CameraSync
from vlm3_ros.image_codec import ImageDecodeError
from vlm3_ros.inference.factory import build_backends, close_backends
from vlm3_ros.inference.scheduler import InferenceWorker
from vlm3_ros.inference.types import Backend, BackendBusy, BackendError, DeadlineExceeded
from vlm3_ros.msg import PointStatus, Status
from vlm3_ros.nodes import conversions as cv
from vlm3_ros.odometry import KeyframeOdometry, KeyframePolicy
from vlm3_ros.params import PARAMS, ConfigError, NodeConfig, ParamSpec, build_config, load_prompts, validate_value
from vlm3_ros.pipeline import Frame, Pipeline, PipelineSettings, PointCode, RequestError
from vlm3_ros.pose import pose_from_tq
from vlm3_ros.prompts import PromptError
from vlm3_ros.srv import EstimatePose, FindCorrespondence, GetDepth, SpatialQuery
from vlm3_ros.unify import TASK_UNIFY, UnifyConfig

NODE_NAME = "vlm3_perception"


class FrameNotFound(LookupError):
    pass


class NotReady(RuntimeError):
    pass


class TaskDisabled(RuntimeError):
    pass


# Exception -> Status code of a service response; the first match wins (subclasses before bases).
ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (NotReady, Status.MODEL_NOT_READY),
    (TaskDisabled, Status.TASK_DISABLED),
    (FrameNotFound, Status.FRAME_NOT_FOUND),
    (RequestError, Status.INVALID_REQUEST),
    (PromptError, Status.INVALID_REQUEST),
    (BackendBusy, Status.BUSY),
    (DeadlineExceeded, Status.TIMEOUT),
    (BackendError, Status.BACKEND_ERROR),
)


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=spec.description + (f" (one of {', '.join(spec.choices)})"
                                                            if spec.choices else ""), read_only=spec.read_only)
    if spec.min is not None and spec.max is not None:
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max),
                                                         step=0.0)]
    return d


def _param_type(spec: ParamSpec) -> Parameter.Type:
    d = spec.default
    if isinstance(d, bool):
        return Parameter.Type.BOOL
    if isinstance(d, int):
        return Parameter.Type.INTEGER
    if isinstance(d, float):
        return Parameter.Type.DOUBLE
    if isinstance(d, str):
        return Parameter.Type.STRING
    if isinstance(d, list) and d and isinstance(d[0], float):
        return Parameter.Type.DOUBLE_ARRAY
    return Parameter.Type.STRING_ARRAY


class PerceptionNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMS:
            self.declare_parameter(spec.name, Parameter(spec.name, _param_type(spec), spec.default).value,
                                   _descriptor(spec))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.cfg: NodeConfig | None = None
        self.pipeline: Pipeline | None = None
        self.backends: dict[str, Backend] = {}
        self.worker: InferenceWorker | None = None
        self.sync = CameraSync()
        self._active = False
        self._state_lock = threading.RLock()
        self._subs: list[Any] = []
        self._timers: list[Any] = []
        self._last_frame_wall = time.monotonic()
        self._started_wall = time.monotonic()
        self.stats: dict[str, float] = {"frames_received": 0, "sparse_published": 0, "sparse_skipped": 0,
                                        "vo_updates": 0, "vo_skipped": 0, "vo_failures": 0}
        self._sparse_busy = threading.Event()
        self._vo_busy = threading.Event()
        self._last_sparse_stamp = -1
        self._last_vo_stamp = -1
        self.odom: KeyframeOdometry | None = None
        self._keyframe: Frame | None = None
        self._T_base_cam_static: np.ndarray | None = None
        self._camera_cb = MutuallyExclusiveCallbackGroup()
        self._timer_cb = MutuallyExclusiveCallbackGroup()
        self._vo_cb = MutuallyExclusiveCallbackGroup()
        self._diag_cb = MutuallyExclusiveCallbackGroup()
        # Reentrant: concurrent calls wait on the inference queue together (a full queue answers
        # BUSY at once) instead of piling up in the DDS request queue, whose history is bounded.
        # A deep request history keeps bursts of calls from being dropped before they are read.
        srv_qos = QoSProfile(depth=256, reliability=ReliabilityPolicy.RELIABLE)
        for srv_type, name, cb in ((GetDepth, "~/get_depth", self._srv_depth),
                                   (EstimatePose, "~/estimate_pose", self._srv_pose),
                                   (FindCorrespondence, "~/find_correspondence", self._srv_corr),
                                   (SpatialQuery, "~/spatial_query", self._srv_spatial),
                                   (Trigger, "~/reset_odometry", self._srv_reset)):
            self.create_service(srv_type, name, cb, qos_profile=srv_qos, callback_group=ReentrantCallbackGroup())
        self.pub_cloud = self.create_publisher(PointCloud2, "~/sparse_depth", 5)
        self.pub_odom = self.create_publisher(Odometry, "~/odom", 10)
        self.pub_tf = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100,
                                                                         reliability=ReliabilityPolicy.RELIABLE))
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._diagnostics, callback_group=self._diag_cb)
        self.get_logger().info("services ready: ~/get_depth ~/estimate_pose ~/find_correspondence ~/spatial_query "
                               "~/reset_odometry (they answer MODEL_NOT_READY until the node is active)")
        if self.get_parameter("autostart").value:
            self._autostart_timer = self.create_timer(0.0, self._autostart, callback_group=self._timer_cb)

    # ================================================================== lifecycle
    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error("autostart: configure failed; fix the parameters above and restart")
            return
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error("autostart: activate failed")

    def _read_params(self) -> dict[str, Any]:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMS}

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = build_config(self._read_params())
            prompts = load_prompts(cfg["prompts_file"])
        except ConfigError as e:
            self.get_logger().error(f"invalid parameters: {e}")
            return TransitionCallbackReturn.FAILURE
        self.cfg = cfg
        self.sync = CameraSync(tolerance_s=cfg["stamp_tolerance_s"], capacity=cfg["frame_cache_size"])
        unify = {task: UnifyConfig(target_focal=base.target_focal, long_edge=base.long_edge,
                                   equalize_focal=cfg["equalize_focal"], rectify=cfg["rectify"],
                                   max_long_edge=cfg["max_long_edge"], interpolation=cfg["interpolation"])
                 for task, base in TASK_UNIFY.items()}
        self.settings = PipelineSettings(unify=unify, model_depth_type=cfg["model.depth_type"], prompts=prompts,
                                         max_new_tokens={t: cfg[f"max_new_tokens.{t}"] for t in TASK_UNIFY},
                                         interpolation=cfg["interpolation"], max_points=cfg["max_points_per_request"])
        if not self._load_backends():
            return TransitionCallbackReturn.FAILURE
        ext = cfg["vo.camera_extrinsic"]
        self._T_base_cam_param = pose_from_tq(np.array(ext[:3]), np.array(ext[3:]))
        self.get_logger().info(f"configured: backend={cfg['backend']} tasks={list(cfg.tasks)} "
                               f"camera={cfg['image_topic']} (+ {cfg['camera_info_topic']})")
        return TransitionCallbackReturn.SUCCESS

    def _load_backends(self) -> bool:
        assert self.cfg is not None
        t0 = time.monotonic()
        try:
            backends = build_backends(self.cfg)
        except (BackendError, ValueError, OSError) as e:
            self.get_logger().error(f"cannot load the models: {e}")
            return False
        except Exception as e:  # a broken install raises anything; report it, do not crash
            self.get_logger().error(f"cannot load the models ({type(e).__name__}): {e}\n{traceback.format_exc()}")
            return False
        with self._state_lock:
            self.backends = backends
            self.pipeline = Pipeline(backends, self.settings)
            self.worker = InferenceWorker(max_queue=self.cfg["inference_queue_size"])
        names = sorted({b.name for b in backends.values()})
        self.get_logger().info(f"models ready in {time.monotonic() - t0:.1f}s: {names}")
        if self.cfg["backend"] == "ground_truth":
            self.get_logger().warning("backend ground_truth is a TEST DOUBLE answering from recorded ground truth")
        return True

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.cfg is not None
        if self.pipeline is None and not self._load_backends():
            return TransitionCallbackReturn.FAILURE
        cfg = self.cfg
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg["qos_depth"],
                         reliability=(ReliabilityPolicy.BEST_EFFORT if cfg["qos_reliability"] == "best_effort"
                                      else ReliabilityPolicy.RELIABLE))
        if cfg["use_compressed"]:
            self._subs.append(self.create_subscription(CompressedImage, cfg["image_topic"] + "/compressed",
                                                       self._on_compressed, qos, callback_group=self._camera_cb))
        else:
            self._subs.append(self.create_subscription(Image, cfg["image_topic"], self._on_image, qos,
                                                       callback_group=self._camera_cb))
        self._subs.append(self.create_subscription(CameraInfo, cfg["camera_info_topic"], self._on_info, qos,
                                                   callback_group=self._camera_cb))
        if cfg["vo.use_tf_static"]:
            static_qos = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                    reliability=ReliabilityPolicy.RELIABLE)
            self._subs.append(self.create_subscription(TFMessage, "/tf_static", self._on_tf_static, static_qos,
                                                       callback_group=self._camera_cb))
        if cfg["sparse_depth.rate_hz"] > 0:
            self._timers.append(self.create_timer(1.0 / cfg["sparse_depth.rate_hz"], self._sparse_tick,
                                                  callback_group=self._timer_cb))
        if cfg["vo.enabled"]:
            self.odom = KeyframeOdometry(self._T_base_cam(), KeyframePolicy(
                cfg["vo.keyframe_min_translation_m"], cfg["vo.keyframe_min_rotation_deg"],
                cfg["vo.keyframe_max_frames"]))
            self._keyframe = None
            self._timers.append(self.create_timer(1.0 / cfg["vo.rate_hz"], self._vo_tick,
                                                  callback_group=self._vo_cb))
        self._last_frame_wall = time.monotonic()
        self._active = True
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self.get_logger().info("inactive: subscriptions stopped, models released")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self.sync.clear()
        self.cfg = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        return TransitionCallbackReturn.SUCCESS

    def _stop(self) -> None:
        """Stop serving: no new work, no camera input or timers, models freed (GPU memory)."""
        self._active = False
        self._teardown_io()
        self._release_models()

    def _teardown_io(self) -> None:
        for s in self._subs:
            self.destroy_subscription(s)
        for t in self._timers:
            t.cancel()
            self.destroy_timer(t)
        self._subs, self._timers = [], []

    def _release_models(self) -> None:
        with self._state_lock:
            worker, backends = self.worker, self.backends
            self.worker, self.pipeline, self.backends = None, None, {}
        if worker is not None:
            worker.stop()
        close_backends(backends)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            try:
                validate_value(p.name, p.value)
            except ConfigError as e:
                return SetParametersResult(successful=False, reason=str(e))
        if self.cfg is not None and any(p.name.startswith(("model.", "backend", "remote.", "ground_truth."))
                                        for p in params):
            self.get_logger().warning("model parameters take effect at the next configure (deactivate, cleanup, "
                                      "configure, activate)")
        return SetParametersResult(successful=True)

    # ================================================================== camera
    def _on_info(self, msg: CameraInfo) -> None:
        self.sync.add_camera_info(cv.stamp_ns(msg.header.stamp), cv.camera_info_data(msg))

    def _store(self, stamp: int, frame_id: str, rgb_fn: Callable[[], np.ndarray]) -> None:
        self.stats["frames_received"] += 1
        self._last_frame_wall = time.monotonic()
        try:
            rgb = rgb_fn()
        except (ImageDecodeError, ValueError) as e:
            self.sync.stats.decode_errors += 1
            self.sync.stats.last_error = str(e)
            self.get_logger().warning(f"dropping image from {self.cfg['image_topic'] if self.cfg else '?'}: {e}",
                                      throttle_duration_sec=5.0)
            return
        if self.sync.add_image(stamp, frame_id, rgb) is None and self.sync.stats.last_error:
            self.get_logger().warning(f"image not usable: {self.sync.stats.last_error}", throttle_duration_sec=5.0)

    def _on_image(self, msg: Image) -> None:
        max_px = self.cfg["max_image_pixels"] if self.cfg else 4096 * 4096
        self._store(cv.stamp_ns(msg.header.stamp), msg.header.frame_id, lambda: cv.image_to_rgb(msg, max_px))

    def _on_compressed(self, msg: CompressedImage) -> None:
        def decode() -> np.ndarray:
            bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ImageDecodeError(f"cannot decode compressed image (format {msg.format!r})")
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

        self._store(cv.stamp_ns(msg.header.stamp), msg.header.frame_id, decode)

    def _on_tf_static(self, msg: TFMessage) -> None:
        if self.cfg is None:
            return
        latest = self.sync.latest()
        cam_frame = latest.frame_id if latest else ""
        for t in msg.transforms:
            if t.header.frame_id == self.cfg["vo.base_frame"] and (not cam_frame or t.child_frame_id == cam_frame):
                tr, q = t.transform.translation, t.transform.rotation
                self._T_base_cam_static = pose_from_tq(np.array([tr.x, tr.y, tr.z]), np.array([q.x, q.y, q.z, q.w]))
                self.get_logger().info(f"camera extrinsic from /tf_static: {t.header.frame_id} -> {t.child_frame_id}")
                if self.odom is not None:
                    self.odom.T_base_cam = self._T_base_cam_static

    def _T_base_cam(self) -> np.ndarray:
        return self._T_base_cam_static if self._T_base_cam_static is not None else self._T_base_cam_param

    # ================================================================== services
    def _frame(self, sel: Any) -> Frame:
        assert self.cfg is not None
        if sel.mode == sel.LATEST:
            f = self.sync.latest()
            if f is None:
                raise FrameNotFound(f"no usable frame yet from {self.cfg['image_topic']} + "
                                    f"{self.cfg['camera_info_topic']} ({self._sync_summary()})")
            return f
        if sel.mode == sel.BY_STAMP:
            ns = cv.stamp_ns(sel.stamp)
            f = self.sync.by_stamp(ns)
            if f is None:
                stamps = self.sync.stamps()
                span = (f"cache holds {len(stamps)} frames from {stamps[0] * 1e-9:.3f} to {stamps[-1] * 1e-9:.3f}"
                        if stamps else "cache is empty")
                raise FrameNotFound(f"no frame with stamp {ns * 1e-9:.6f} (+-{self.cfg['stamp_tolerance_s']}s); {span}")
            return f
        if sel.mode == sel.EXPLICIT:
            try:
                rgb = cv.image_to_rgb(sel.image, self.cfg["max_image_pixels"])
                info = cv.camera_info_data(sel.camera_info)
                model = CameraModel.from_camera_info(info)
                return Frame(rgb, model, cv.stamp_ns(sel.image.header.stamp),
                             sel.image.header.frame_id or info.frame_id)
            except (ImageDecodeError, CameraModelError) as e:
                raise RequestError(f"explicit frame: {e}") from e
        if sel.mode == sel.KEYFRAME:
            if self._keyframe is None:
                raise FrameNotFound("no visual-odometry keyframe yet (vo.enabled false, or no frame received)")
            return self._keyframe
        raise RequestError(f"frame selector mode {sel.mode} is not one of LATEST=0, BY_STAMP=1, EXPLICIT=2, "
                           "KEYFRAME=3")

    def _sync_summary(self) -> str:
        s = self.sync.stats
        return (f"images {s.images}, paired {s.paired_exact + s.paired_fallback}, without CameraInfo "
                f"{s.no_camera_info}, bad CameraInfo {s.bad_camera_info}, undecodable {s.decode_errors}")

    def _infer(self, label: str, fn: Callable[[], Any]) -> Any:
        with self._state_lock:
            worker = self.worker
        if not self._active or worker is None:
            raise NotReady("node is not active (configuring, loading models, or deactivated)")
        timeout = self.cfg["request_timeout_s"] if self.cfg else 60.0
        fut = worker.submit(fn, timeout, label)
        try:
            return fut.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise DeadlineExceeded(f"{label} did not finish within request_timeout_s={timeout}") from None

    def _check_task(self, task: str) -> None:
        if not self._active or self.cfg is None:
            raise NotReady("node is not active (configuring, loading models, or deactivated)")
        if task not in self.cfg.tasks:
            raise TaskDisabled(f"task '{task}' is disabled (enabled_tasks={list(self.cfg.tasks)})")

    def _serve(self, name: str, task: str, resp: Any, body: Callable[[], None]) -> Any:
        t0 = time.monotonic()
        code, msg = Status.OK, "ok"
        try:
            self._check_task(task)
            body()
            code, msg = resp.status.code, resp.message or "ok"
        except Exception as e:  # every error becomes a status; none may crash the node
            known = next((c for t, c in ERROR_STATUS if isinstance(e, t)), None)
            if known is not None:
                code, msg = known, str(e)
            else:
                code, msg = Status.BACKEND_ERROR, f"internal error {type(e).__name__}: {e}"
                self.get_logger().error(f"{name}: {msg}\n{traceback.format_exc()}")
        resp.status.code = code
        resp.success = code == Status.OK
        resp.message = msg
        resp.timing.total_s = time.monotonic() - t0
        if code not in (Status.OK,):
            self.get_logger().info(f"{name}: status {code}: {msg}", throttle_duration_sec=1.0)
        return resp

    @staticmethod
    def _point_status(codes: np.ndarray, reasons: list[str]) -> list[PointStatus]:
        return [PointStatus(code=int(c), reason=r) for c, r in zip(codes, reasons, strict=True)]

    @staticmethod
    def _overall(codes: np.ndarray) -> tuple[int, str]:
        ok = int(np.sum(codes == PointCode.OK))
        if ok == len(codes):
            return Status.OK, f"{ok} point(s) answered"
        parse = int(np.sum(codes == PointCode.PARSE_FAILURE))
        if ok == 0:
            if parse == len(codes):
                return Status.PARSE_FAILURE, f"no answer could be parsed ({parse} point(s)); see raw_answers"
            if np.all(codes == PointCode.OUT_OF_IMAGE):
                return Status.INVALID_REQUEST, "every pixel is outside the image; see point_status"
            return Status.PARTIAL, "no point succeeded; see point_status"
        return Status.PARTIAL, f"{ok} of {len(codes)} point(s) answered; see point_status"

    def _fill_timing(self, resp: Any, tm: Any) -> None:
        resp.timing.preprocess_s = tm.preprocess_s
        resp.timing.inference_s = tm.inference_s
        resp.timing.prompt_tokens = tm.prompt_tokens
        resp.timing.generated_tokens = tm.generated_tokens

    def _srv_depth(self, req: GetDepth.Request, resp: GetDepth.Response) -> GetDepth.Response:
        def body() -> None:
            frame = self._frame(req.frame)
            resp.header = Header(stamp=cv.to_time(frame.stamp_ns), frame_id=frame.frame_id)
            if req.depth_type not in (GetDepth.Request.Z_DEPTH, GetDepth.Request.RANGE):
                raise RequestError(f"depth_type {req.depth_type} must be Z_DEPTH=0 or RANGE=1")
            px = np.array([[p.x, p.y] for p in req.pixels], dtype=np.float64).reshape(-1, 2)
            dtype = "z_depth" if req.depth_type == GetDepth.Request.Z_DEPTH else "range"
            assert self.pipeline is not None
            pipeline = self.pipeline
            r = self._infer("get_depth", lambda: pipeline.depth(frame, px, dtype))
            resp.depth = [float(v) for v in r.depth]
            resp.points = [cv.point_msg(p) for p in r.points]
            resp.point_status = self._point_status(r.codes, r.reasons)
            resp.raw_answers = r.raw
            self._fill_timing(resp, r.timings)
            resp.status.code, resp.message = self._overall(r.codes)

        return self._serve("get_depth", "depth", resp, body)

    def _srv_corr(self, req: FindCorrespondence.Request,
                  resp: FindCorrespondence.Response) -> FindCorrespondence.Response:
        def body() -> None:
            fa, fb = self._frame(req.frame_a), self._frame(req.frame_b)
            resp.header_a = Header(stamp=cv.to_time(fa.stamp_ns), frame_id=fa.frame_id)
            resp.header_b = Header(stamp=cv.to_time(fb.stamp_ns), frame_id=fb.frame_id)
            px = np.array([[p.x, p.y] for p in req.pixels_a], dtype=np.float64).reshape(-1, 2)
            assert self.pipeline is not None
            pipeline = self.pipeline
            r = self._infer("find_correspondence", lambda: pipeline.correspondence(fa, fb, px))
            from vlm3_ros.msg import Pixel
            resp.pixels_b = [Pixel(x=float(u), y=float(v)) for u, v in r.pixels_b]
            resp.point_status = self._point_status(r.codes, r.reasons)
            resp.raw_answers = r.raw
            self._fill_timing(resp, r.timings)
            resp.status.code, resp.message = self._overall(r.codes)

        return self._serve("find_correspondence", "corr", resp, body)

    def _srv_pose(self, req: EstimatePose.Request, resp: EstimatePose.Response) -> EstimatePose.Response:
        def body() -> None:
            fa, fb = self._frame(req.frame_a), self._frame(req.frame_b)
            resp.header_a = Header(stamp=cv.to_time(fa.stamp_ns), frame_id=fa.frame_id)
            resp.header_b = Header(stamp=cv.to_time(fb.stamp_ns), frame_id=fb.frame_id)
            assert self.pipeline is not None
            pipeline = self.pipeline
            r = self._infer("estimate_pose", lambda: pipeline.pose(fa, fb, req.with_distance))
            order = ["rotation", "ypr", "direction", "distance"]
            resp.raw_answers = [r.raw.get(k, "") for k in order if k in r.raw]
            self._fill_timing(resp, r.timings)
            nan = float("nan")
            resp.yaw_deg, resp.pitch_deg, resp.roll_deg = r.ypr_deg if r.ypr_deg else (nan, nan, nan)
            resp.rotation_angle_deg = float(r.rotation_angle_deg) if r.rotation_angle_deg is not None else nan
            resp.distance_m = float(r.distance_m) if r.distance_m is not None else nan
            resp.metric = r.distance_m is not None
            if r.direction is not None:
                resp.translation_direction.x, resp.translation_direction.y, resp.translation_direction.z = (
                    float(v) for v in r.direction)
            if r.T_a_b is not None:
                resp.transform_a_b = cv.transform_msg(r.T_a_b)
                missing = [f"{k}: {v}" for k, v in r.reasons.items()]
                resp.status.code = Status.OK if not missing else Status.PARTIAL
                resp.message = "ok" if not missing else "pose from yaw/pitch/roll + direction; " + "; ".join(missing)
            else:
                resp.status.code = Status.PARSE_FAILURE
                resp.message = "no pose: " + "; ".join(f"{k}: {v}" for k, v in r.reasons.items())

        return self._serve("estimate_pose", "pose", resp, body)

    def _srv_spatial(self, req: SpatialQuery.Request, resp: SpatialQuery.Response) -> SpatialQuery.Response:
        def body() -> None:
            assert self.cfg is not None
            if len(req.regions) > self.cfg["max_regions_per_request"]:
                raise RequestError(f"{len(req.regions)} regions; the maximum is {self.cfg['max_regions_per_request']}")
            if len(req.question) > self.cfg["max_question_chars"]:
                raise RequestError(f"question has {len(req.question)} characters; the maximum is "
                                   f"{self.cfg['max_question_chars']}")
            frame = self._frame(req.frame)
            resp.header = Header(stamp=cv.to_time(frame.stamp_ns), frame_id=frame.frame_id)
            boxes = np.array([[r.x_min, r.y_min, r.x_max, r.y_max] for r in req.regions], dtype=np.float64)
            assert self.pipeline is not None
            pipeline = self.pipeline
            r = self._infer("spatial_query", lambda: pipeline.spatial(frame, boxes.reshape(-1, 4), req.question))
            resp.prompt, resp.raw_answer = r.prompt, r.raw
            self._fill_timing(resp, r.timings)
            if r.answer is None:
                resp.status.code, resp.message = Status.PARSE_FAILURE, r.reason
                return
            a = r.answer
            resp.answer = a.text
            resp.has_quantity = a.quantity is not None
            resp.quantity = float(a.quantity) if a.quantity is not None else float("nan")
            resp.unit = a.unit
            resp.quantity_m = float(a.quantity_m) if a.quantity_m is not None else float("nan")
            resp.has_yes_no = a.yes is not None
            resp.yes = bool(a.yes)
            if a.quantity is None and a.yes is None and a.clock is None:
                resp.status.code = Status.PARSE_FAILURE
                resp.message = "the answer holds no quantity, yes/no or clock direction; see answer"
            else:
                resp.status.code, resp.message = Status.OK, "ok"

        return self._serve("spatial_query", "object", resp, body)

    def _srv_reset(self, req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        if self.odom is None:
            resp.success, resp.message = False, "visual odometry is not running (vo.enabled false or node inactive)"
            return resp
        self.odom.reset()
        self._keyframe = None
        self._last_vo_stamp = -1
        resp.success, resp.message = True, "odometry reset: the next frame is the new origin"
        return resp

    # ================================================================== sparse depth
    def _sparse_pixels(self, frame: Frame) -> np.ndarray:
        assert self.cfg is not None
        if self.cfg["sparse_depth.pattern"] == "pixels":
            return np.array(self.cfg["sparse_depth.pixels"], dtype=np.float64).reshape(-1, 2)
        cols, rows = self.cfg["sparse_depth.grid_cols"], self.cfg["sparse_depth.grid_rows"]
        w, h = frame.camera.width, frame.camera.height
        xs = (np.arange(cols) + 0.5) * w / cols
        ys = (np.arange(rows) + 0.5) * h / rows
        return np.array([[x, y] for y in ys for x in xs])

    def _sparse_tick(self) -> None:
        if not self._active or self.pub_cloud.get_subscription_count() == 0:
            return
        frame = self.sync.latest()
        if frame is None or frame.stamp_ns == self._last_sparse_stamp:
            return
        if self._sparse_busy.is_set():
            self.stats["sparse_skipped"] += 1
            return
        worker, pipeline, cfg = self.worker, self.pipeline, self.cfg
        if worker is None or pipeline is None or cfg is None:
            return
        px = self._sparse_pixels(frame)
        px = px[(px[:, 0] <= frame.camera.width - 1) & (px[:, 1] <= frame.camera.height - 1)]
        dtype = cfg["sparse_depth.depth_type"]
        self._last_sparse_stamp = frame.stamp_ns

        def publish(r: Any) -> None:
            self.pub_cloud.publish(cv.pointcloud2(pack_points(r.points), frame.stamp_ns, frame.frame_id))
            self.stats["sparse_published"] += 1

        self._in_background("sparse_depth", lambda: pipeline.depth(frame, px, dtype),
                            1.0 / cfg["sparse_depth.rate_hz"] + 1.0, self._sparse_busy, "sparse_skipped", publish)

    def _in_background(self, label: str, fn: Callable[[], Any], timeout: float, busy: threading.Event,
                       skipped: str, on_result: Callable[[Any], None]) -> None:
        """Queue a timer's job without waiting; one at a time per timer (``busy``), a full queue or a
        failure skips this tick (counted in ``stats[skipped]``) instead of piling up stale work."""
        try:
            fut = self.worker.submit(fn, timeout, label) if self.worker is not None else None
        except BackendBusy:
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
                self.get_logger().warning(f"{label} skipped: {e}", throttle_duration_sec=5.0)
                return
            on_result(r)

        fut.add_done_callback(done)

    # ================================================================== visual odometry
    def _vo_tick(self) -> None:
        if not self._active or self.odom is None or self.cfg is None:
            return
        frame = self.sync.latest()
        if frame is None or frame.stamp_ns <= self._last_vo_stamp:
            return
        if self._keyframe is None:
            self._keyframe = frame
            self._last_vo_stamp = frame.stamp_ns
            st = self.odom.start(frame.stamp_ns)
            self._publish_odom(st.T_odom_base, frame.stamp_ns)
            return
        if self._vo_busy.is_set():
            self.stats["vo_skipped"] += 1
            return
        worker, pipeline, key = self.worker, self.pipeline, self._keyframe
        if worker is None or pipeline is None:
            return
        self._last_vo_stamp = frame.stamp_ns

        def integrate(r: Any) -> None:
            odom = self.odom
            if odom is None:
                return
            T = r.T_a_b
            if T is not None and r.distance_m is None:
                T = None  # a unit direction has no scale: do not integrate it
            st = odom.update(frame.stamp_ns, T)
            if st is None:
                self.stats["vo_failures"] += 1
                self.get_logger().warning(f"VO answer not usable: {r.reasons}", throttle_duration_sec=5.0)
                return
            self.stats["vo_updates"] += 1
            if st.keyframe_stamp_ns == frame.stamp_ns:
                self._keyframe = frame
            self._publish_odom(st.T_odom_base, frame.stamp_ns)

        self._in_background("vo", lambda: pipeline.pose(key, frame, True), 2.0 / self.cfg["vo.rate_hz"] + 1.0,
                            self._vo_busy, "vo_skipped", integrate)

    def _publish_odom(self, T: np.ndarray, stamp: int) -> None:
        assert self.cfg is not None
        cfg = self.cfg
        header = Header(stamp=cv.to_time(stamp), frame_id=cfg["vo.odom_frame"])
        tf = cv.transform_msg(T)
        if cfg["vo.publish_tf"]:
            self.pub_tf.publish(TFMessage(transforms=[TransformStamped(header=header,
                                                                       child_frame_id=cfg["vo.base_frame"],
                                                                       transform=tf)]))
        sp = cfg["vo.position_stddev_m"] ** 2
        sr = np.radians(cfg["vo.rotation_stddev_deg"]) ** 2
        cov = np.diag([sp, sp, sp, sr, sr, sr]).ravel().tolist()
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
        pose.orientation = tf.rotation
        twist_cov = (np.eye(6) * 1e6).ravel().tolist()  # velocity is not estimated
        self.pub_odom.publish(Odometry(header=header, child_frame_id=cfg["vo.base_frame"],
                                       pose=PoseWithCovariance(pose=pose, covariance=cov),
                                       twist=TwistWithCovariance(covariance=twist_cov)))

    # ================================================================== diagnostics
    def _diagnostics(self) -> None:
        cfg = self.cfg
        silent = time.monotonic() - self._last_frame_wall
        st = DiagnosticStatus(name=f"{self.get_name()}: camera", hardware_id=cfg["image_topic"] if cfg else "")
        if not self._active or cfg is None:
            st.level, st.message = DiagnosticStatus.STALE, "inactive"
        elif silent > cfg["camera_timeout_s"]:
            st.level = DiagnosticStatus.WARN
            st.message = (f"no image on {cfg['image_topic']} for {silent:.1f}s; check the topic name, the driver and "
                          "the QoS (qos_reliability)")
            self.get_logger().warning(st.message, throttle_duration_sec=10.0)
        elif self.sync.stats.images and not (self.sync.stats.paired_exact + self.sync.stats.paired_fallback):
            st.level = DiagnosticStatus.WARN
            st.message = f"images arrive but none pairs with {cfg['camera_info_topic']}: {self.sync.stats.last_error}"
            self.get_logger().warning(st.message, throttle_duration_sec=10.0)
        else:
            st.level, st.message = DiagnosticStatus.OK, "receiving"
        values = {**self.sync.stats.as_dict(), **self.stats}
        if self.worker is not None:
            values.update({f"queue_{k}": v for k, v in self.worker.stats.items()})
            values["queue_waiting"] = self.worker.queued()
        st.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray(status=[st])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)


def main(args: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    rclpy.init(args=args)
    node = PerceptionNode()
    # Threads waiting on queued inference (queue size + 1 running) must leave room for the
    # camera, timer and diagnostics callbacks and for calls answered at once (BUSY, invalid).
    queue = int(node.get_parameter("inference_queue_size").value)
    executor = MultiThreadedExecutor(num_threads=queue + 8)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._active = False
        node._release_models()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
