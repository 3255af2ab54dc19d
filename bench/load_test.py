#!/usr/bin/env python3
"""Load test of the perception node: N concurrent service clients x M GetDepth requests while a
camera streams at 30 Hz; every request must get exactly one answer (success or an explicit BUSY),
latency percentiles, frames dropped and the node's RSS (sampled every 0.5 s) are written to
bench/results/load_<backend>.json and .md.

  python bench/load_test.py --clients 8 --requests 100          # tiny untrained checkpoint, CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("tiny", "ground_truth"), default="tiny")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=100, help="requests per client")
    p.add_argument("--points", type=int, default=4, help="pixels per request")
    p.add_argument("--rate", type=float, default=30.0, help="camera rate (Hz)")
    p.add_argument("--queue", type=int, default=8, help="the node's inference_queue_size")
    p.add_argument("--max-duration", type=float, default=900.0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    from vlm3_ros.tools import ros_env

    ros_env.apply()
    import rclpy

    from vlm3_ros.inference.assets import make_test_checkpoint
    from vlm3_ros.readers.tum import BAG_PATHS
    from vlm3_ros.tools.loadgen import run_load

    args = ["--ros-args", "-p", "image_topic:=/camera/rgb/image_color", "-p",
            "camera_info_topic:=/camera/rgb/camera_info", "-p", "vo.enabled:=false", "-p", "sparse_depth.rate_hz:=0.0",
            "-p", f"inference_queue_size:={a.queue}", "-p", "frame_cache_size:=60"]
    if a.backend == "tiny":
        ckpt = make_test_checkpoint(ROOT / ".cache" / "vlm3_ros" / "tiny_qwen3_vl")
        args += ["-p", "backend:=transformers", "-p", "model.device:=cpu", "-p", "enabled_tasks:=[depth]",
                 "-p", f"model.depth_path:={ckpt}", "-p", "max_new_tokens.depth:=16"]
    else:
        args += ["-p", "backend:=ground_truth", "-p", f"ground_truth.bag:={BAG_PATHS['mcap']}",
                 "-p", "enabled_tasks:=[depth]"]
    rclpy.init()
    try:
        r = run_load(args, a.clients, a.requests, a.rate, a.points, a.max_duration,
                     Path(tempfile.mkdtemp(prefix="vlm3_load_")))
    finally:
        rclpy.try_shutdown()
    s = r.summary()
    a.out.mkdir(parents=True, exist_ok=True)
    s["config"] = vars(a) | {"out": str(a.out)}
    (a.out / f"load_{a.backend}.json").write_text(json.dumps(s, indent=2, default=str))
    lat = s["latency"]
    md = [f"# load test ({a.backend}): {a.clients} clients x {a.requests} requests, camera {a.rate} Hz", "",
          "| requests | answered | statuses | p50 ms | p99 ms | frames published | received | dropped | "
          "RSS start / max / end MiB |", "|---|---|---|---|---|---|---|---|---|",
          f"| {s['requests']} | {s['answered']} | {s['statuses']} | {lat.get('p50_ms', float('nan')):.0f} | "
          f"{lat.get('p99_ms', float('nan')):.0f} | {s['frames_published']} | {s['frames_received_by_node']} | "
          f"{s['frames_dropped']} | {s['rss_start_mib']:.0f} / {s['rss_max_mib']:.0f} / {s['rss_end_mib']:.0f} |"]
    (a.out / f"load_{a.backend}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if s["answered"] == s["requests"] and not s["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
