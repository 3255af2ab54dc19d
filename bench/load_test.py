#!/usr/bin/env python3
"""Load test of the perception node: N concurrent service clients x M GetDepth requests while a
camera streams at 30 Hz; every request must get exactly one answer (a success, or an explicit BUSY,
TIMEOUT or PARSE_FAILURE), with latency percentiles, frames dropped and the node's RSS (sampled
every 0.5 s), repeated --runs times (a fresh node each). Writes bench/results/<name>.json and .md.

  python bench/load_test.py --backend ground_truth --clients 16 --requests 20 --runs 3
      # the bundled bag's frames (their ground truth exists), pixels with depth: the success path
  python bench/load_test.py --clients 8 --requests 100          # tiny untrained checkpoint, CPU
  python bench/load_test.py --backend toy --clients 8 --requests 10 --runs 3
      # the TOY demo model (not VLM3) on the bag's frames: answers that parse, the model's success path
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench_common.backends import default_checkpoint
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("tiny", "toy", "ground_truth"), default="tiny")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=100, help="requests per client")
    p.add_argument("--points", type=int, default=4, help="pixels per request")
    p.add_argument("--rate", type=float, default=30.0, help="camera rate (Hz)")
    p.add_argument("--queue", type=int, default=8, help="the node's inference_queue_size")
    p.add_argument("--max-duration", type=float, default=900.0)
    p.add_argument("--runs", type=int, default=1, help="repeat the whole run (a fresh node each time)")
    p.add_argument("--source", choices=("bag", "tum"), default=None,
                   help="camera stream: the bag's frames (default for ground_truth) or wall-clock TUM frames")
    p.add_argument("--name", default="", help="results file name (default load_<backend>_<clients>x<requests>)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    source = a.source or ("tum" if a.backend == "tiny" else "bag")
    name = a.name or f"load_{a.backend}_{a.clients}x{a.requests}"
    from vlm3_ros.tools import ros_env

    ros_env.apply()
    import rclpy

    from vlm3_ros.inference.assets import make_test_checkpoint
    from vlm3_ros.readers.tum import BAG_PATHS
    from vlm3_ros.tools.loadgen import run_load, valid_depth_pixels

    args = ["--ros-args", "-p", "image_topic:=/camera/rgb/image_color", "-p",
            "camera_info_topic:=/camera/rgb/camera_info", "-p", "vo.enabled:=false", "-p", "sparse_depth.rate_hz:=0.0",
            "-p", f"inference_queue_size:={a.queue}", "-p", "frame_cache_size:=60"]
    if a.backend in ("tiny", "toy"):
        if a.backend == "tiny":
            ckpt, tokens = make_test_checkpoint(default_checkpoint()), 16
        else:   # the TOY demo model (vlm3-ros make-demo-model): trained here on the bag, not VLM3
            from vlm3_ros.tools.demo_model import default_dir
            from vlm3_ros.training import toy

            ckpt, tokens = toy.build(default_dir(), ros_env.cache_dir()), 48
        args += ["-p", "backend:=transformers", "-p", "model.device:=cpu", "-p", "enabled_tasks:=[depth]",
                 "-p", f"model.depth_path:={ckpt}", "-p", f"max_new_tokens.depth:={tokens}"]
    else:
        args += ["-p", "backend:=ground_truth", "-p", f"ground_truth.bag:={BAG_PATHS['mcap']}",
                 "-p", "enabled_tasks:=[depth]"]
    pool = valid_depth_pixels() if source == "bag" else None
    writer = ResultsWriter(a.out, name, command_line(__file__, argv))
    rclpy.init()
    runs = []
    try:
        for k in range(a.runs):
            r = run_load(args, a.clients, a.requests, a.rate, a.points, a.max_duration,
                         Path(tempfile.mkdtemp(prefix="vlm3_load_")), source=source, pixel_pool=pool)
            runs.append(r.summary())
            print(f"run {k + 1}/{a.runs}: {runs[-1]['answered']}/{runs[-1]['requests']} answered, "
                  f"{runs[-1]['statuses']}", flush=True)
    finally:
        rclpy.try_shutdown()
    meta = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}, "source": source}
    md = ["| run | requests | answered | statuses | p50 ms | p99 ms | frames published | received | "
          "dropped | RSS start / max / end MiB | RSS by quarter MiB |", "|" + "---|" * 11]
    for k, s in enumerate(runs, 1):
        lat = s["latency"]
        md.append(f"| {k} | {s['requests']} | {s['answered']} | {s['statuses']} | "
                  f"{lat.get('p50_ms', float('nan')):.0f} | {lat.get('p99_ms', float('nan')):.0f} | "
                  f"{s['frames_published']} | {s['frames_received_by_node']} | {s['frames_dropped']} | "
                  f"{s['rss_start_mib']:.0f} / {s['rss_max_mib']:.0f} / {s['rss_end_mib']:.0f} | "
                  f"{' / '.join(f'{v:.0f}' for v in s['rss_quarters_mib'])} |")
    md += ["", "Clients call back to back (no pause between a reply and the next request), so with N clients "
           "a request waits behind up to N-1 others (in the node's queue, its executor and DDS, all sharing the "
           "machine with the clients): the round trip grows with N; `--clients 1` gives the single request's.", "",
           "Success share (OK / requests) and the node's time per stage over all runs' answered, non-BUSY "
           "requests (from each response's `Timing`; docs/engine.md): p50 / p99 ms.", ""]
    for k, s in enumerate(runs, 1):
        ok = s["statuses"].get("OK", 0)
        md.append(f"- run {k}: {ok}/{s['requests']} OK ({100.0 * ok / max(1, s['requests']):.1f}%)")
    stages = list(runs[0].get("stages", {})) if runs else []
    if stages:
        md += ["", "| run | " + " | ".join(stages) + " | client round trip |", "|---|" + "---|" * (len(stages) + 1)]
        for k, s in enumerate(runs, 1):
            pct = [s["stages"][st] for st in stages]
            cells = [f"{q.get('p50_ms', float('nan')):.2f} / {q.get('p99_ms', float('nan')):.2f}" for q in pct]
            lat = s["latency"]
            md.append(f"| {k} | " + " | ".join(cells) +
                      f" | {lat.get('p50_ms', float('nan')):.1f} / {lat.get('p99_ms', float('nan')):.1f} |")
    md = writer.write(f"load test ({a.backend}, {source} frames): {a.clients} clients x {a.requests} requests, camera "
                      f"{a.rate} Hz, {a.runs} run(s)", {"config": meta, "runs": runs}, md, meta_key="config")
    print("\n".join(md))
    return 0 if all(s["answered"] == s["requests"] and not s["errors"] for s in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
