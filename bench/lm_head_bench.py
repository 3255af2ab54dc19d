#!/usr/bin/env python3
"""The greedy token from the output layer on a CPU, three ways side by side in one run: the full
logits + argmax (what a model's forward and ``generate`` do), vocabulary slices with the plain
matrix product, and vocabulary slices with the weight reordered for oneDNN (what the engine's
greedy loop uses from ``lm_head.MIN_ROWS`` rows; vlm3_ros/inference/lm_head.py). All three must
give the same tokens (checked on every configuration before timing).

  python bench/lm_head_bench.py                               # tiny checkpoint's layer: 152k x 64 fp32
  python bench/lm_head_bench.py --width 2560 --rows 1,8,64    # the 4B's width (1.5 GB in fp32)

Random weights and hidden states; ms per call, min and median of --repeats calls after one warm-up.
Writes bench/results/lm_head_<device>.{json,md} (--out to change).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="1,8,16,32,48,64,128,256", help="comma-separated row counts (questions per step)")
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lm_head_cpu")
    a = p.parse_args(argv)

    import numpy as np
    import torch

    from vlm3_ros.inference.lm_head import GreedyHead

    writer = ResultsWriter(a.out.parent, a.out.name, command_line(__file__, argv))
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(a.vocab, a.width, generator=g)
    ways = {"full logits": lambda h: torch.nn.functional.linear(h, weight).argmax(-1),
            "plain slices": GreedyHead(weight, pack=False)}
    packed = GreedyHead(weight)
    if packed.packed:
        ways["packed slices"] = packed
    rows_out = []
    for n in (int(r) for r in a.rows.split(",")):
        hidden = torch.randn(n, a.width, generator=g)
        want = ways["full logits"](hidden)
        row: dict = {"rows": n}
        for name, f in ways.items():
            if not torch.equal(f(hidden), want):
                raise SystemExit(f"{name} gave other tokens than the full logits at {n} rows")
            ts = []
            for _ in range(a.repeats):
                t = time.perf_counter()
                f(hidden)
                ts.append(time.perf_counter() - t)
            row[name] = {"min_ms": min(ts) * 1e3, "median_ms": float(np.median(ts)) * 1e3}
        rows_out.append(row)
        print(n, "rows:", ", ".join(f"{k} {v['median_ms']:.1f} ms" for k, v in row.items() if k != "rows"), flush=True)

    meta = {"threads": torch.get_num_threads(), "vocab": a.vocab, "width": a.width, "repeats": a.repeats,
            "onednn_reorder": packed.packed}
    names = list(ways)
    body = [f"torch with {meta['threads']} threads. ms per call, median (min) of {a.repeats} calls; every way gave "
            "the same tokens as the full logits. full logits: one projection + argmax (a model's forward); plain "
            f"slices: {packed.slice_tokens}-token vocabulary slices, value first, index only where a slice beats "
            "the row's best; packed slices: the same with the weight reordered for oneDNN once"
            + ("" if packed.packed else " (not available in this PyTorch build: column left out)") + ".", "",
            "| rows | " + " | ".join(names) + " | full / best slices |", "|---|" + "---|" * (len(names) + 1)]
    for r in rows_out:
        best = min(r[k]["median_ms"] for k in names[1:])
        body.append(f"| {r['rows']} | " + " | ".join(f"{r[k]['median_ms']:.1f} ({r[k]['min_ms']:.1f})" for k in names)
                    + f" | {r['full logits']['median_ms'] / best:.2f}x |")
    writer.write(f"greedy token from the output layer ({a.vocab} x {a.width} float32, CPU)",
                 {"meta": meta, "rows": rows_out}, body)
    print("wrote", writer.paths[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
