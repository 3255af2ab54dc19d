#!/usr/bin/env python3
"""Request merging on vs off: N clients ask depth at P points each on the same new frame at the
same moment, through the node's serving core (worker, merging, pipeline, engine); side by side in
one run on one loaded model, median over frames.

  python bench/merge_bench.py                                   # tiny checkpoint, CPU, 8 clients x 4 points
  python bench/merge_bench.py --arch 4b --device cuda --dtype bfloat16 --clients 8,32

With merging off, the first request runs alone, the others wait and then run one after another
(each reusing the frame's prefilled image from the prefix cache: the node's default); with it on,
the waiting ones run as one batch. Answers are forced to --answer-tokens tokens (random weights).
Writes bench/results/merge_<arch>_<device>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from bench_common.backends import BenchModel, default_checkpoint, on_same_model, param_default
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent


def round_trip(core, frame_stamp: int, clients: int, points: int, rng) -> dict:
    import numpy as np

    from vlm3_ros.serving.core import FrameMode, FrameRef
    from vlm3_ros.serving.status import StatusCode

    ref = FrameRef(FrameMode.BY_STAMP, frame_stamp)
    pixels = [np.column_stack([rng.uniform(10, 630, points), rng.uniform(10, 470, points)]) for _ in range(clients)]
    lat = [0.0] * clients
    codes = [0] * clients
    go = threading.Event()

    def client(i: int) -> None:
        go.wait()
        t = time.perf_counter()
        r = core.services.get_depth(ref, pixels[i], 0)
        lat[i] = time.perf_counter() - t
        codes[i] = int(r.code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "p50_s": float(np.median(lat)), "max_s": max(lat),
            "statuses": sorted({StatusCode(c).name for c in codes})}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("tiny", "4b", "4b-narrow"), default="tiny")
    p.add_argument("--checkpoint", type=Path, default=None, help="default: $VLM3_CACHE/tiny_qwen3_vl")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--clients", default="8", help="concurrent clients (comma list)")
    p.add_argument("--points", type=int, default=4, help="pixels per request")
    p.add_argument("--frames", type=int, default=3, help="timed frames per configuration (after 1 warm-up)")
    p.add_argument("--answer-tokens", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    import numpy as np

    from vlm3_ros.inference.assets import make_test_checkpoint
    from vlm3_ros.readers.tum import TumSequence
    from vlm3_ros.serving.core import PerceptionCore

    a.checkpoint = a.checkpoint or default_checkpoint()
    make_test_checkpoint(a.checkpoint)
    writer = ResultsWriter(a.out, f"merge_{a.arch}_{'cuda' if a.device.startswith('cuda') else 'cpu'}",
                           command_line(__file__, argv))
    model = BenchModel.from_args(a)
    backend = model.backend("engine")
    cores = {}
    for merge in (True, False):
        # the node's defaults for what this compares (the frame prefix cache on), a queue for every client
        extra = {"merge_requests": merge, "inference_queue_size": 64,
                 "model.prefix_cache_mb": param_default("model.prefix_cache_mb")}
        settings = model.settings("engine", extra)
        per = on_same_model(backend, model.backend_config("engine", extra))
        core = PerceptionCore()
        if not (core.configure(settings.serving, settings.pipeline, lambda per=per: {"depth": per})
                and core.activate()):
            raise RuntimeError("core did not configure")
        cores[merge] = core
    seq = TumSequence()
    rows = []
    stamp = int(seq.frames[0].rgb_stamp * 1e9)
    for clients in (int(c) for c in a.clients.split(",")):
        for merge in (True, False):
            rng = np.random.default_rng(clients)
            runs = []
            merged_before = cores[merge].models.worker.stats["merged"]
            for k in range(a.frames + 1):   # frame 0 warms up
                stamp += 1_000_000          # a new frame each round: the first request prefills it
                f = seq.frames[k % len(seq.frames)]
                core = cores[merge]
                core.camera.on_camera_info(stamp, seq.camera_info)
                core.camera.on_image(stamp, seq.camera_info.frame_id, lambda f=f: f.rgb())
                r = round_trip(core, stamp, clients, a.points, rng)
                if k:
                    runs.append(r)
            med = {key: float(np.median([r[key] for r in runs])) for key in ("wall_s", "p50_s", "max_s")}
            row = {"clients": clients, "points": a.points, "merge": merge, **med,
                   "statuses": sorted({st for r in runs for st in r["statuses"]}), "requests": clients * (a.frames + 1),
                   "merged_jobs": cores[merge].models.worker.stats["merged"] - merged_before}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for core in cores.values():
        core.cleanup()
    meta = {"arch": a.arch, "device": a.device, "answer_tokens": a.answer_tokens, "frames": a.frames}
    body = ["N clients ask depth at the same moment about one new frame; wall: until the last reply; "
            "the node's defaults otherwise (frame prefix cache on). Statuses: every reply's (the untrained tiny "
            "checkpoint's answers do not parse: PARSE_FAILURE is its success path); merged jobs: jobs that joined "
            "another's run, warm-up frame included.", "",
            "| clients x points | merged: wall ms | p50 ms | unmerged: wall ms | p50 ms | speed-up (wall) "
            "| merged jobs | statuses |",
            "|---|---|---|---|---|---|---|---|"]
    for clients in sorted({r["clients"] for r in rows}):
        m = next(r for r in rows if r["clients"] == clients and r["merge"])
        u = next(r for r in rows if r["clients"] == clients and not r["merge"])
        statuses = ", ".join(sorted(set(m["statuses"]) | set(u["statuses"])))
        body.append(f"| {clients} x {a.points} | {m['wall_s'] * 1e3:.0f} | {m['p50_s'] * 1e3:.0f} | "
                    f"{u['wall_s'] * 1e3:.0f} | {u['p50_s'] * 1e3:.0f} | {u['wall_s'] / m['wall_s']:.2f}x | "
                    f"{m['merged_jobs']} of {m['requests']} | {statuses} |")
    md = writer.write(f"Request merging on vs off ({a.arch}, {a.device}, {a.answer_tokens} answer tokens, median of "
                      f"{a.frames} frames)", {"meta": meta, "rows": rows}, body)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
