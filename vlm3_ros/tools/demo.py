"""``vlm3-ros demo``: the perception node fed the bundled real TUM bag, answering its four services
and publishing its sparse depth cloud and odometry, in separate processes over DDS on loopback.

Default backend: the TOY demo model through the real transformers code path: the tiny Qwen3-VL
architecture fine-tuned here on the bundled bag's first three frames (``vlm3-ros make-demo-model``).
It is NOT VLM3: its answers follow the contract's formats, so the four services' answers parse
and the cloud and odometry fill, but its numbers are no better than a constant's (and its object
answers garble the boxes they name). ``--backend tiny``: the UNTRAINED tiny checkpoint, whose answers are
nonsense (PARSE_FAILURE everywhere). Real answers need the VLM3 checkpoints on disk:
``vlm3-ros bringup depth_model:=... pose_model:=... corr_model:=... object_model:=...``.
``--backend ground_truth`` runs the same path with the ground-truth TEST DOUBLE instead, whose
answers come from the bag's recorded depth and motion-capture poses.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools import ros_env
from vlm3_ros.tools.processes import NodeProcess

BANNER_TINY = ("NOTE: backend = tiny UNTRAINED checkpoint (random weights, real Qwen3-VL architecture). Its answers "
               "are nonsense; the statuses report that honestly. Real answers need the VLM3 checkpoints on disk.")
BANNER_TOY = ("NOTE: backend = TOY demo model (tiny Qwen3-VL fine-tuned here on 3 frames of the bundled bag). It is "
              "NOT VLM3: its answers follow the contract's formats, its numbers are near a constant's.")
BANNER_GT = "NOTE: backend = ground_truth TEST DOUBLE: answers come from the bag's recorded depth and mocap poses."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vlm3-ros demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("toy", "tiny", "ground_truth"), default="toy")
    p.add_argument("--bag", type=Path, default=BAG_PATHS["mcap"], help="bag to play (default: bundled TUM MCAP)")
    p.add_argument("--checkpoint", type=Path, default=ros_env.cache_dir() / "tiny_qwen3_vl",
                   help="tiny checkpoint directory (built if missing)")
    p.add_argument("--toy-model", type=Path, default=None,
                   help="toy model directory (default: $VLM3_CACHE/toy_vlm3_demo, built if missing)")
    p.add_argument("--rate", type=float, default=0.25, help="bag playback speed factor")
    p.add_argument("--out", type=Path, default=None,
                   help="write demo_summary.json and the node's debug images (debug_<service>.png) here")
    a = p.parse_args(argv)
    ros_env.apply()
    import rclpy
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image, PointCloud2

    from vlm3_ros.msg import FrameSelector, Pixel, Region
    from vlm3_ros.ros.client import STATUS_NAMES, PerceptionClient, describe
    from vlm3_ros.ros.recorder import TopicRecorder
    from vlm3_ros.srv import EstimatePose, FindCorrespondence, GetDepth, ObjectQuery

    args = ["--ros-args", "-p", "image_topic:=/camera/rgb/image_color",
            "-p", "camera_info_topic:=/camera/rgb/camera_info",
            "-p", "sparse_depth.rate_hz:=2.0", "-p", "sparse_depth.grid_cols:=4", "-p", "sparse_depth.grid_rows:=3",
            "-p", "vo.rate_hz:=2.0", "-p", "vo.use_tf_static:=false", "-p", "qos_reliability:=reliable"]
    if a.backend in ("tiny", "toy"):
        if a.backend == "tiny":
            from vlm3_ros.inference.assets import make_test_checkpoint

            ckpt, tokens = make_test_checkpoint(a.checkpoint), 24
        else:
            from vlm3_ros.tools.demo_model import default_dir
            from vlm3_ros.training import toy

            ckpt, tokens = toy.build(a.toy_model or default_dir(), ros_env.cache_dir()), 48
        args += ["-p", "backend:=transformers", "-p", "model.device:=cpu", "-p", "model.batch_size:=16"]
        args += [x for t in ("depth", "pose", "corr", "object") for x in ("-p", f"model.{t}_path:={ckpt}")]
        # the toy's object answers name both boxes in full (about 55 tokens) before their number
        lengths = {"depth": tokens, "pose": tokens, "corr": tokens, "object": max(tokens, 64)}
        args += [x for t, n in lengths.items() for x in ("-p", f"max_new_tokens.{t}:={n}")]
        print(BANNER_TINY if a.backend == "tiny" else BANNER_TOY)
    else:
        args += ["-p", "backend:=ground_truth", "-p", f"ground_truth.bag:={a.bag}"]
        print(BANNER_GT)
    logs = Path(tempfile.mkdtemp(prefix="vlm3_demo_"))
    summary: dict = {"backend": a.backend, "bag": str(a.bag), "logs": str(logs)}
    rclpy.init()
    rec = TopicRecorder("vlm3_demo_recorder")
    rec.subscribe(PointCloud2, "/vlm3_perception/sparse_depth")
    rec.subscribe(Odometry, "/vlm3_perception/odom")
    rec.subscribe(Image, "/vlm3_perception/debug_image", depth=10)
    rec.start()
    node = NodeProcess("vlm3_ros.ros.perception_node", args, log_dir=logs).start()
    cnode = rclpy.create_node("vlm3_demo_client")
    try:
        t0 = time.monotonic()
        node.wait_for_log("]: active", timeout=180)
        print(f"[demo] node active in {time.monotonic() - t0:.1f}s (log: {node.log_path})")
        player = NodeProcess("vlm3_ros.ros.bag_player", [str(a.bag), "--rate", str(a.rate), "--start-delay", "15",
                                                            "--min-subscribers", "2"], log_dir=logs).start()
        client = PerceptionClient(cnode)
        if not client.wait(30):
            raise RuntimeError("services did not come up")
        player.wait_for_log("loop 1/1 done", timeout=120)
        player.stop()
        print(f"[demo] played {a.bag.name} at {a.rate}x")
        latest, key = FrameSelector(mode=FrameSelector.LATEST), FrameSelector(mode=FrameSelector.KEYFRAME)
        calls = {
            "depth": (client.depth, GetDepth.Request(frame=latest, pixels=[Pixel(x=160.0, y=120.0), Pixel(
                x=320.0, y=240.0), Pixel(x=480.0, y=360.0)], depth_type=GetDepth.Request.Z_DEPTH)),
            "pose": (client.pose, EstimatePose.Request(frame_a=key, frame_b=latest, with_distance=True)),
            "corr": (client.corr, FindCorrespondence.Request(frame_a=key, frame_b=latest,
                                                             pixels_a=[Pixel(x=200.0, y=150.0)])),
            "object": (client.object, ObjectQuery.Request(
                frame=latest, question="How far is Region [0] from Region [1]?",
                regions=[Region(x_min=40.0, y_min=200.0, x_max=200.0, y_max=400.0),
                         Region(x_min=380.0, y_min=120.0, x_max=600.0, y_max=300.0)])),
        }
        summary["services"] = {}
        for name, (cli, req) in calls.items():
            shown = len(rec.get("/vlm3_perception/debug_image"))
            resp = client.call(cli, req, 300)
            print(f"[demo] {name}: " + describe(name, resp).replace("\n", "\n       "))
            views = rec.wait_for("/vlm3_perception/debug_image", shown + 1, timeout=5.0)
            if a.out and len(views) > shown:
                _save_png(views[-1], a.out / f"debug_{name}.png")
            summary["services"][name] = {"status": STATUS_NAMES.get(resp.status.code, resp.status.code),
                                         "success": resp.success, "message": resp.message,
                                         "total_s": round(resp.timing.total_s, 3)}
        time.sleep(1.0)
        clouds = rec.get("/vlm3_perception/sparse_depth")
        odoms = rec.get("/vlm3_perception/odom")
        summary["sparse_depth_clouds"] = len(clouds)
        summary["odometry_messages"] = len(odoms)
        if clouds:
            c = clouds[-1]
            finite = int(np.sum(np.isfinite(np.frombuffer(bytes(c.data), "<f4").reshape(-1, 3)).all(axis=1)))
            print(f"[demo] ~/sparse_depth: {len(clouds)} PointCloud2 in frame {c.header.frame_id!r}, last with "
                  f"{c.width} points ({finite} finite), stamp {c.header.stamp.sec}.{c.header.stamp.nanosec:09d}")
        print(f"[demo] ~/odom and /tf odom->base_link: {len(odoms)} message(s)"
              + (" (the untrained model's pose answers do not parse, so only the origin is published)"
                 if a.backend == "tiny" else ""))
        if a.backend == "toy":
            print("[demo] " + BANNER_TOY.removeprefix("NOTE: "))
        if a.out:
            a.out.mkdir(parents=True, exist_ok=True)
            (a.out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
        print("[demo] summary: " + json.dumps(summary))
        return 0
    finally:
        cnode.destroy_node()
        rec.stop()
        node.stop()
        rclpy.try_shutdown()


def _save_png(msg: object, path: Path) -> None:
    """The node's debug image (rgb8) as a PNG."""
    import cv2

    rgb = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    print(f"[demo] debug image: {path}")


if __name__ == "__main__":
    sys.exit(main())
