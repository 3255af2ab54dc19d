"""Load generator: a 30 Hz camera stream plus concurrent service clients against a perception node
in its own process; records every request's status and latency, frames dropped and the node's RSS.
Used by bench/load_test.py (long runs, figures) and by the test suite (short run, correctness)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from vlm3_ros.eval import metrics as M
from vlm3_ros.geometry.camera import CameraInfoData
from vlm3_ros.msg import FrameSelector, Pixel, Status
from vlm3_ros.readers.bag import BagReader, loop_period_ns
from vlm3_ros.readers.tum import BAG_PATHS, TumSequence
from vlm3_ros.ros import conversions as cv
from vlm3_ros.ros.client import STATUS_NAMES, PerceptionClient
from vlm3_ros.srv import GetDepth
from vlm3_ros.tools.processes import NodeProcess

# stage -> Timing field (vlm3_ros.runtime.timing). "backend call" holds image + prefill + decode for
# the local engine and all of a remote server's or the ground-truth double's work; "node total" is
# the serving core's whole reply.
TIMING_STAGES = {"queue": "queue_s", "unify": "preprocess_s", "image": "image_s", "prefill": "prefill_s",
                 "decode": "decode_s", "backend call": "inference_s", "parse": "parse_s", "convert": "convert_s",
                 "node total": "total_s"}


@dataclass
class LoadResult:
    requests: int = 0
    answered: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    # node-side seconds per stage of every answered, non-BUSY request (the response's Timing)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    frames_published: int = 0
    frames_received: int = 0
    rss_mib: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        rss = self.rss_mib or [float("nan")]
        return {"requests": self.requests, "answered": self.answered, "statuses": self.statuses,
                "latency": self.latency, "stages": self.stages, "frames_published": self.frames_published,
                "frames_received_by_node": self.frames_received,
                "frames_dropped": self.frames_published - self.frames_received,
                "rss_start_mib": rss[0], "rss_max_mib": max(rss), "rss_end_mib": rss[-1],
                "rss_growth_mib": rss[-1] - rss[0],
                # the trend: RSS at each quarter of the run (a plateau means bounded)
                "rss_quarters_mib": [rss[min(len(rss) - 1, int(q * (len(rss) - 1)))] for q in (0.25, 0.5, 0.75, 1.0)],
                "duration_s": self.duration_s, "errors": self.errors[:10]}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def camera_stream(source: str) -> tuple[list[tuple[np.ndarray, CameraInfoData, int]], int | None]:
    """The frames the load test streams, as (rgb, CameraInfo, recorded stamp), and the loop period:
    ``bag``: the bundled bag's frames with their stamps, each pass continuing the clock by the loop
    period (the ground-truth double answers them); ``tum``: five TUM frames stamped with the wall
    clock (no ground truth: a test double answers PARSE_FAILURE, a model answers)."""
    if source == "bag":
        records = list(BagReader(BAG_PATHS["mcap"]).records(("image", "camera_info", "tf", "depth")))
        infos = {r.value.stamp_ns: r.value.info for r in records if r.kind == "camera_info"}
        frames = [(r.value.rgb(), infos[r.value.stamp_ns], r.value.stamp_ns) for r in records if r.kind == "image"]
        return frames, loop_period_ns(records)
    seq = TumSequence()
    return [(f.rgb(), seq.camera_info, 0) for f in seq.frames[:5]], None


def valid_depth_pixels(step: int = 16, margin: int = 16) -> np.ndarray:
    """Grid pixels with ground-truth depth in every frame of the bundled bag (the ground-truth
    double answers them all, so a load test measures the success path)."""
    depth = [rec.value.depth_m() for rec in BagReader(BAG_PATHS["mcap"]).records(("depth",))]
    ok = np.all([d > 0 for d in depth], axis=0)
    vv, uu = np.mgrid[margin:ok.shape[0] - margin:step, margin:ok.shape[1] - margin:step]
    keep = ok[vv, uu]
    return np.column_stack([uu[keep], vv[keep]]).astype(np.float64)


def run_load(node_args: list[str], clients: int = 8, requests_per_client: int = 100, rate_hz: float = 30.0,
             points: int = 4, max_duration_s: float = 600.0, log_dir: Path | None = None,
             image_topic: str = "/camera/rgb/image_color", info_topic: str = "/camera/rgb/camera_info",
             target: str = "/vlm3_perception", source: str = "tum",
             pixel_pool: np.ndarray | None = None) -> LoadResult:
    """Start the node (``node_args`` must point it at ``image_topic``/``info_topic`` and name it
    ``target``), stream frames (``source``: see camera_stream), fire the requests (pixels drawn from
    ``pixel_pool``, else anywhere in a 640x480 image), stop; rclpy must be initialised."""
    res = LoadResult()
    frames, period = camera_stream(source)
    node = NodeProcess("vlm3_ros.ros.perception_node", node_args, log_dir=log_dir).start()
    pub_node = Node("vlm3_load_camera")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    pub_img = pub_node.create_publisher(Image, image_topic, qos)
    pub_info = pub_node.create_publisher(CameraInfo, info_topic, qos)
    diag: list[DiagnosticArray] = []
    pub_node.create_subscription(DiagnosticArray, "/diagnostics", diag.append, 10)
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    stage_samples: dict[str, list[float]] = {}
    try:
        node.wait_for_log("]: active", timeout=300)
        assert node.proc is not None
        pid = node.proc.pid

        def camera() -> None:
            k, dt, nxt = 0, 1.0 / rate_hz, time.monotonic()
            while not stop.is_set():
                rgb, info, recorded = frames[k % len(frames)]
                stamp = recorded + (k // len(frames)) * period if period else time.time_ns()
                pub_info.publish(cv.camera_info_msg(info, stamp))
                pub_img.publish(cv.rgb_to_image(rgb, stamp, info.frame_id))
                res.frames_published += 1
                k += 1
                nxt += dt
                time.sleep(max(0.0, nxt - time.monotonic()))

        def rss() -> None:
            while not stop.is_set():
                res.rss_mib.append(_rss_mib(pid))
                time.sleep(0.5)

        def client(idx: int) -> None:
            n = Node(f"vlm3_load_client_{idx}")
            c = PerceptionClient(n, target)
            try:
                if not c.wait(60):
                    res.errors.append(f"client {idx}: services not available")
                    return
                rng = np.random.default_rng(idx)
                for _ in range(requests_per_client):
                    if stop.is_set():
                        break
                    if pixel_pool is not None:
                        xy = pixel_pool[rng.choice(len(pixel_pool), points, replace=False)]
                    else:
                        xy = rng.uniform([10, 10], [630, 470], (points, 2))
                    px = [Pixel(x=float(x), y=float(y)) for x, y in xy]
                    t = time.monotonic()
                    with lock:
                        res.requests += 1
                    try:
                        r = c.call(c.depth, GetDepth.Request(frame=FrameSelector(), pixels=px), timeout=120)
                    except TimeoutError as e:
                        res.errors.append(str(e))
                        continue
                    dt = time.monotonic() - t
                    name = STATUS_NAMES.get(r.status.code, str(r.status.code))
                    with lock:
                        res.answered += 1
                        res.statuses[name] = res.statuses.get(name, 0) + 1
                        if r.status.code != Status.BUSY:
                            latencies.append(dt)
                            tm = r.timing
                            for stage, attr in TIMING_STAGES.items():
                                stage_samples.setdefault(stage, []).append(getattr(tm, attr))
            finally:
                n.destroy_node()

        spin = threading.Thread(target=lambda: [rclpy.spin_once(pub_node, timeout_sec=0.05)
                                                for _ in iter(lambda: stop.is_set(), True)], daemon=True)
        threads = [threading.Thread(target=camera, daemon=True), threading.Thread(target=rss, daemon=True), spin]
        for t in threads:
            t.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        workers = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for w in workers:
            w.start()
        deadline = t0 + max_duration_s
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        res.duration_s = time.monotonic() - t0
        stop.set()
        for w in workers:
            w.join(130)
        for t in threads:
            t.join(5)
        time.sleep(1.5)
        deadline = time.monotonic() + 5
        n_diag = len(diag)
        while len(diag) == n_diag and time.monotonic() < deadline:
            rclpy.spin_once(pub_node, timeout_sec=0.1)
        mine = [st for d in diag for st in d.status if st.hardware_id == image_topic and st.name.endswith(": camera")]
        if mine:
            vals = {kv.key: kv.value for kv in mine[-1].values}
            res.frames_received = int(vals.get("frames_received", 0))
        res.latency = M.latency_percentiles(latencies)
        res.stages = {stage: M.latency_percentiles(v) for stage, v in stage_samples.items()}
        if node.proc.poll() is not None:
            res.errors.append(f"node exited with {node.proc.returncode}")
        return res
    finally:
        stop.set()
        pub_node.destroy_node()
        node.stop()
