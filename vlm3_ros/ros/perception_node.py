"""vlm3_ros perception node: camera in, the VLM3 services, sparse depth cloud, visual odometry.

A thin shell around vlm3_ros.serving.core.PerceptionCore: this file owns the lifecycle
transitions, the ROS parameters, subscriptions, publishers, timers and message conversion; every
decision (frame selection, gating, deadlines, statuses, producers, health) is the core's.

Lifecycle: configure validates parameters and loads the models, activate subscribes and starts
the producers' timers, deactivate stops them and frees the models (GPU memory), cleanup drops the
rest. With ``autostart`` (default) the node configures and activates itself at start-up.

Threads: camera callbacks only decode and cache frames (their own callback group). Every service
is reentrant and waits on the core's bounded inference worker (a full queue answers BUSY at once);
timers have their own groups; the executor is multi-threaded.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections import deque
from typing import Any

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from vlm3_ros.geometry.backproject import pack_points
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.params import mapping
from vlm3_ros.params.config import ConfigError, build_config
from vlm3_ros.params.node_settings import NodeSettings
from vlm3_ros.params.table import NODE_NAME, parameters_help
from vlm3_ros.readers.image_codec import ImageDecodeError
from vlm3_ros.ros import conversions as cv
from vlm3_ros.ros import markers, parameters
from vlm3_ros.ros.actions import PerceptionActions
from vlm3_ros.ros.client import SERVICE_QOS
from vlm3_ros.ros.services import SERVICES
from vlm3_ros.ros.stop_signals import StopSignals, shut_down
from vlm3_ros.serving import debug_view
from vlm3_ros.serving.core import PerceptionCore
from vlm3_ros.serving.log import Log
from vlm3_ros.serving.service_requests import Reply
from vlm3_ros.tasks.depth_task import DepthResult
from vlm3_ros.tasks.task_registry import TASKS


class PerceptionNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        parameters.declare_all(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.core = PerceptionCore(Log(self.get_logger()))
        self.settings: NodeSettings | None = None
        self._subs: list[Any] = []
        self._timers: list[Any] = []
        self._camera_cb = MutuallyExclusiveCallbackGroup()
        self._timer_cb = MutuallyExclusiveCallbackGroup()
        self._vo_cb = MutuallyExclusiveCallbackGroup()
        # Reentrant: concurrent calls wait on the inference queue together (a full queue answers
        # BUSY at once) instead of piling up in the DDS request queue, whose history is bounded.
        # A deep request history keeps bursts of calls from being dropped before they are read.
        srv_qos = SERVICE_QOS
        for name, spec in TASKS.items():
            srv_type, handler = SERVICES[name]
            self.create_service(srv_type, f"~/{spec.service}", functools.partial(handler, self.core.services),
                                qos_profile=srv_qos, callback_group=ReentrantCallbackGroup())
        self.create_service(Trigger, "~/reset_odometry", self._srv_reset, qos_profile=srv_qos,
                            callback_group=ReentrantCallbackGroup())
        self.actions = PerceptionActions(self, self.core.services)  # cancellable goals (ros.actions)
        self.pub_cloud = self.create_publisher(PointCloud2, "~/sparse_depth", 5)
        # What the model was asked and answered, drawn and as markers: built only while subscribed.
        self.pub_debug = self.create_publisher(Image, "~/debug_image", 2)
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", 5)
        self._path: deque[np.ndarray] = deque(maxlen=2000)
        self.core.services.on_reply = self._on_reply
        self.pub_odom = self.create_publisher(Odometry, "~/odom", 10)
        self.pub_tf = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100,
                                                                         reliability=ReliabilityPolicy.RELIABLE))
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._diagnostics, callback_group=MutuallyExclusiveCallbackGroup())
        services = " ".join(f"~/{s.service}" for s in TASKS.values())
        self.get_logger().info(f"services ready: {services} ~/reset_odometry (they answer MODEL_NOT_READY until "
                               "the node is active)")
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

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            s = self.settings = mapping.node_settings(build_config(parameters.read_all(self)))
        except ConfigError as e:
            self.core.fail_configure(f"invalid parameters: {e}")
            return TransitionCallbackReturn.FAILURE
        for note in s.notes:
            self.get_logger().info(note)
        if not self.core.configure(s.serving, s.pipeline, lambda: mapping.open_backends(s)):
            self.settings = None  # still unconfigured: every parameter may be fixed before the next try
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"configured: backend={s.backend} tasks={list(s.tasks)} "
                               f"camera={s.serving.image_topic} (+ {s.serving.camera_info_topic})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.settings is not None
        if not self.core.activate():
            return TransitionCallbackReturn.FAILURE
        s, cam = self.settings.serving, self.settings.camera
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cam.depth,
                         reliability=ReliabilityPolicy.RELIABLE if cam.reliable else ReliabilityPolicy.BEST_EFFORT)
        image = ((CompressedImage, s.image_topic + "/compressed", self._on_compressed) if cam.use_compressed
                 else (Image, s.image_topic, self._on_image))
        self._subs.append(self.create_subscription(*image, qos, callback_group=self._camera_cb))
        self._subs.append(self.create_subscription(CameraInfo, s.camera_info_topic, self._on_info, qos,
                                                   callback_group=self._camera_cb))
        if s.vo.use_tf_static:
            # tf2's QoS: /tf_static latched (transient local), /tf a deep reliable history
            static_qos = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                    reliability=ReliabilityPolicy.RELIABLE)
            self._subs.append(self.create_subscription(TFMessage, "/tf_static", functools.partial(self._on_tf, True),
                                                       static_qos, callback_group=self._camera_cb))
            self._subs.append(self.create_subscription(TFMessage, "/tf", functools.partial(self._on_tf, False),
                                                       QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
                                                       callback_group=self._camera_cb))
        if self.core.sparse is not None:
            self._timers.append(self.create_timer(1.0 / s.sparse.rate_hz, self._sparse_tick,
                                                  callback_group=self._timer_cb))
        if self.core.vo is not None:
            self._timers.append(self.create_timer(1.0 / s.vo.rate_hz, self._vo_tick, callback_group=self._vo_cb))
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self.get_logger().info("inactive: subscriptions stopped, models released")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self.core.cleanup()
        self.settings = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        return TransitionCallbackReturn.SUCCESS

    def _stop(self) -> None:
        """Stop serving: no camera input or timers, models freed (the core answers NOT_READY)."""
        self.core.active = False
        for s in self._subs:
            self.destroy_subscription(s)
        for t in self._timers:
            t.cancel()
            self.destroy_timer(t)
        self._subs, self._timers = [], []
        self.core.deactivate()

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        result, live = parameters.check_changes(params, parameters.read_all(self), self.settings is not None)
        if live is not None and self.settings is not None:  # configured: the accepted LIVE changes, applied now
            s = self.settings = mapping.with_live_changes(self.settings, live)
            self.core.apply_live(s.serving, s.pipeline)
            self.get_logger().info("applied " + ", ".join(f"{p.name}={p.value}" for p in params))
        return result

    # ================================================================== camera
    # Every subscription runs inside camera.safely: a malformed message is counted and dropped.
    def _on_info(self, msg: CameraInfo) -> None:
        cam = self.core.camera
        cam.safely("camera_info", lambda: cam.on_camera_info(cv.stamp_ns(msg.header.stamp), cv.camera_info_data(msg)))

    def _on_image(self, msg: Image) -> None:
        cam, max_px = self.core.camera, self.core.camera.max_image_pixels
        cam.safely("image", lambda: cam.on_image(cv.stamp_ns(msg.header.stamp), msg.header.frame_id,
                                                 lambda: cv.image_to_rgb(msg, max_px)))

    def _on_compressed(self, msg: CompressedImage) -> None:
        def decode() -> np.ndarray:
            bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ImageDecodeError(f"cannot decode compressed image (format {msg.format!r})")
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

        cam = self.core.camera
        cam.safely("compressed image", lambda: cam.on_image(cv.stamp_ns(msg.header.stamp), msg.header.frame_id, decode))

    def _on_tf(self, static: bool, msg: TFMessage) -> None:
        cam, topic = self.core.camera, "/tf_static" if static else "/tf"
        cam.safely(topic, lambda: cam.on_tf([cv.tf_edge(t) for t in msg.transforms], static))

    # ================================================================== outputs
    def _srv_reset(self, req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        resp.success, resp.message = self.core.reset_odometry()
        return resp

    def _sparse_tick(self) -> None:
        if self.core.sparse is not None and self.pub_cloud.get_subscription_count() > 0:
            self.core.sparse.tick(self._publish_cloud)

    def _publish_cloud(self, r: DepthResult, frame: Frame) -> None:
        self.pub_cloud.publish(cv.pointcloud2(pack_points(r.points), frame.stamp_ns, frame.frame_id))
        assert self.core.sparse is not None
        px = self.core.sparse.settings.pixels_for(frame.camera.width, frame.camera.height)
        self._debug_outputs("sparse_depth", "OK", [frame], r, {"pixels": px})

    def _on_reply(self, name: str, reply: Reply, inputs: dict[str, np.ndarray]) -> None:
        if reply.result is not None:
            self._debug_outputs(name, reply.code.name, reply.frames, reply.result, inputs)

    def _debug_outputs(self, name: str, code: str, frames: list[Frame], result: object,
                       inputs: dict[str, np.ndarray]) -> None:
        if self.pub_debug.get_subscription_count() > 0:
            view = debug_view.render(name, code, frames, result, inputs)
            if view is not None:
                img, frame = view
                self.pub_debug.publish(cv.rgb_to_image(img, frame.stamp_ns, frame.frame_id))
        if isinstance(result, DepthResult) and frames and self.pub_markers.get_subscription_count() > 0:
            self.pub_markers.publish(MarkerArray(markers=[markers.depth_points(result.points, frames[0].stamp_ns,
                                                                               frames[0].frame_id)]))

    def _vo_tick(self) -> None:
        if self.core.vo is not None:
            self.core.vo.tick(self._publish_odom)

    def _publish_odom(self, T: np.ndarray, stamp: int) -> None:
        assert self.settings is not None
        vo = self.settings.serving.vo
        odom = cv.odometry_msg(T, stamp, vo.odom_frame, vo.base_frame, vo.position_stddev_m, vo.rotation_stddev_deg)
        if vo.publish_tf:
            self.pub_tf.publish(TFMessage(transforms=[TransformStamped(
                header=odom.header, child_frame_id=odom.child_frame_id, transform=cv.transform_msg(T))]))
        self.pub_odom.publish(odom)
        self._path.append(T[:3, 3].copy())
        if self.pub_markers.get_subscription_count() > 0:
            self.pub_markers.publish(MarkerArray(markers=[markers.path(list(self._path), stamp, vo.odom_frame)]))

    def _diagnostics(self) -> None:
        topic = str(self.get_parameter("image_topic").value)  # known even when configure failed
        arr = DiagnosticArray(status=[DiagnosticStatus(
            name=f"{self.get_name()}: {h.name}", hardware_id=topic, level=bytes([int(h.level)]), message=h.message,
            values=[KeyValue(key=str(k), value=str(v)) for k, v in h.values.items()]) for h in self.core.health()])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)


def main(args: list[str] | None = None) -> int:
    argv = sys.argv if args is None else args
    user_args = argv[1:argv.index("--ros-args")] if "--ros-args" in argv else argv[1:]
    if "-h" in user_args or "--help" in user_args:
        print(parameters_help(argv[0].rsplit("/", 1)[-1] if argv else "perception_node"))
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    # Before rclpy.init: rclpy's SIGINT/SIGTERM handlers end the spin, then call this one, which
    # records the signal instead of raising KeyboardInterrupt into the shutdown below.
    stop = StopSignals().install()
    try:
        rclpy.init(args=args)
    except Exception as e:  # rcl's argument errors (unknown ROS args, a bad -p rule): one line, not a trace
        print(f"perception_node: bad command line: {e} (see --help)", file=sys.stderr)
        return 2
    node = PerceptionNode()
    # Threads waiting on queued inference (queue size + 1 running) must leave room for the
    # camera, timer and diagnostics callbacks and for calls answered at once (BUSY, invalid).
    queue = int(node.get_parameter("inference_queue_size").value)
    executor = MultiThreadedExecutor(num_threads=queue + 8)
    executor.add_node(node)
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    finally:
        shut_down(node, executor, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
