#!/usr/bin/env python3
"""Shared-prefix engine vs naive per-question generate: per-frame latency and points per second
for 1, 8, 64 and 256 depth points on one frame, side by side in one run, plus peak memory.
Modes: engine (rows attend to one shared prefix KV), no-lead (the engine without prefilling the
questions' common leading tokens once), replicated (the engine with the prefix KV copied per row,
the previous design), naive (one generate per question).

  python bench/engine_bench.py                         # CPU, tiny offline checkpoint (untrained)
  python bench/engine_bench.py --arch 4b --device cuda --dtype bfloat16   # true Qwen3-VL-4B shape, random weights
  python bench/engine_bench.py --arch 4b-narrow --modes engine,replicated --points 8,64,256
      # CPU: the 4B's layer widths (hidden 2560, 8 KV heads x 128) with 2 text and 2 vision layers

Each (mode, points) configuration runs in its own process so peak memory is its own. Answers are
forced to --answer-tokens new tokens (the depth answer with its think block is about 25), since
random weights would otherwise stop at arbitrary lengths. Writes JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def node_config(a: argparse.Namespace, mode: str, extra: dict | None = None):
    """The node's configuration for this run (the same parameters a robot sets, plus ``extra``)."""
    from vlm3_ros.params.config import build_config

    return build_config({"backend": "transformers", "enabled_tasks": ["depth"], "vo.enabled": False,
                         "sparse_depth.rate_hz": 0.0, "model.depth_path": str(a.checkpoint), "model.device": a.device,
                         "model.dtype": a.dtype, "model.engine_mode": "naive" if mode == "naive" else "engine",
                         "model.batch_size": a.batch_size, "model.prefix_cache_mb": 0.0,
                         "max_points_per_request": 4096, "max_new_tokens.depth": a.answer_tokens,
                         # latency.py has neither option: the node's defaults
                         "model.decode_graph": getattr(a, "decode_graph", None) or param_default("model.decode_graph"),
                         "model.graph_slots": param_default("model.graph_slots") if getattr(a, "graph_slots", None)
                         is None else a.graph_slots, **(extra or {})})


def param_default(name: str) -> Any:
    from vlm3_ros.params.table import PARAMS

    return next(p.default for p in PARAMS if p.name == name)


def build_backend(a: argparse.Namespace, mode: str):
    import dataclasses

    from vlm3_ros.inference.local import TransformersBackend, load_processor
    from vlm3_ros.params.mapping import backend_config

    # min_new_tokens: random weights would stop at arbitrary lengths; force the answer length.
    cfg = dataclasses.replace(backend_config(node_config(a, mode), "depth"), min_new_tokens=a.answer_tokens,
                              shared_prefix_attention=mode != "replicated", shared_question_lead=mode != "no-lead",
                              prefix_kernel=getattr(a, "prefix_kernel", "auto"))   # latency.py has no option
    if a.arch == "tiny":
        return TransformersBackend(cfg)
    from vlm3_ros.inference.assets import random_arch_model

    model = random_arch_model(a.arch, a.device, a.dtype if a.dtype != "auto" else "bfloat16")
    return TransformersBackend(cfg, model=model, processor=load_processor(str(a.checkpoint)))


class AttentionClock:
    """Bench instrumentation (CPU only, where every op is synchronous): the wall time of the
    KV-cache update plus the attention function of every text layer during answer steps (one
    query per row): the part of a decode step that sharing the prefix changes. The rest of the
    step (projections, MLP, output layer) does the same work per row in both modes.

    Wraps ``Cache.update`` and the attention functions in transformers' registry, so the model
    code and the engine run unchanged; vision layers and the prefills (more than one query per
    row) are not counted."""

    def __init__(self, names: list[str]) -> None:
        from transformers import AttentionInterface
        from transformers.cache_utils import Cache
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        self.seconds = 0.0
        Cache.update = self._clocked(Cache.update)
        for name in names:
            AttentionInterface.register(name, self._clocked(ALL_ATTENTION_FUNCTIONS[name]))

    def _clocked(self, fn: Any) -> Any:
        """``fn`` timed when its second argument (``update``'s keys, an attention function's
        queries, both (B, heads, positions, d)) holds one position per row: an answer step."""

        def clocked(*args: Any, **kwargs: Any) -> Any:
            if args[1].shape[-2] != 1:
                return fn(*args, **kwargs)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

        return clocked


def worker(a: argparse.Namespace, mode: str, points: int) -> dict:
    import numpy as np
    import torch

    from vlm3_ros.geometry.camera import CameraModel
    from vlm3_ros.geometry.frame import Frame
    from vlm3_ros.params.mapping import pipeline_settings
    from vlm3_ros.readers.tum import TumSequence
    from vlm3_ros.tasks.pipeline import Pipeline

    seq = TumSequence()
    cam = CameraModel.from_camera_info(seq.camera_info)
    backend = build_backend(a, mode)
    if a.device.startswith("cuda"):   # the peak of serving: the 4B is built in float32, then cast
        torch.cuda.reset_peak_memory_stats()
    pipe = Pipeline({"depth": backend}, pipeline_settings(node_config(a, mode)))
    clock = None
    if a.device == "cpu" and mode != "naive":
        clock = AttentionClock([backend.model.config.get_text_config()._attn_implementation])
    rng = np.random.default_rng(0)
    times, gen, stages, split = [], 0, [], []
    for k in range(a.frames + 1):  # frame 0 warms up
        f = seq.frames[k % len(seq.frames)]
        frame = Frame(f.rgb(), cam, int(f.rgb_stamp * 1e9) + k, "cam")
        px = np.column_stack([rng.uniform(10, 630, points), rng.uniform(10, 470, points)])
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        before = dict(backend.stats)
        attn_before = clock.seconds if clock else 0.0
        t = time.perf_counter()
        r = pipe.depth(frame, px, "z_depth")
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        if k:
            times.append(time.perf_counter() - t)
            gen += r.timings.generated_tokens
            stages.append((r.timings.image_s, r.timings.prefill_s, r.timings.decode_s))
            # the engine's greedy loop: the questions' prefill and the answer steps after it
            steps = backend.stats["answer_steps"] - before["answer_steps"]
            step_s = (backend.stats["answer_steps_s"] - before["answer_steps_s"]) / steps if steps else float("nan")
            attn_s = (clock.seconds - attn_before) / steps if clock and steps else float("nan")
            split.append((backend.stats["question_prefill_s"] - before["question_prefill_s"], step_s, attn_s))
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if a.device.startswith("cuda") else None
    prof = None
    if a.profile and mode != "naive":
        px = np.column_stack([rng.uniform(10, 630, points), rng.uniform(10, 470, points)])
        f = seq.frames[0]
        prof = profile_frame(a, lambda: pipe.depth(Frame(f.rgb(), cam, int(f.rgb_stamp * 1e9) + 10**6, "cam"), px,
                                                   "z_depth"))
    image_s, prefill_s, decode_s = (float(np.median(v)) for v in zip(*stages, strict=True))
    questions_s, step_s, attn_s = (float(np.median(v)) for v in zip(*split, strict=True))
    timed_loop = mode != "naive" and not np.isnan(step_s)
    return {"mode": mode, "points": points, "frame_s": float(np.median(times)), "frames": len(times),
            "image_s": image_s, "prefill_s": prefill_s, "decode_s": decode_s,
            # decode time per generated position of the batch (all rows step together)
            "decode_step_ms": decode_s * 1e3 / max(1, a.answer_tokens * -(-points // a.batch_size)),
            # the decode stage split: the questions' prefill (all batches) and one answer step of a batch
            "question_prefill_ms": questions_s * 1e3 if timed_loop else None,
            "answer_step_ms": step_s * 1e3 if timed_loop else None,
            # of that step: the KV-cache updates and attention of the text layers (CPU only)
            "attention_kv_ms": attn_s * 1e3 if timed_loop and not np.isnan(attn_s) else None,
            "points_per_s": points / float(np.median(times)), "generated_tokens_per_frame": gen / len(times),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_gpu_mib": peak_gpu,
            "profile": prof, **{k: backend.stats.get(k, 0) for k in GRAPH_STATS}}


# the answer steps' static shapes and CUDA graphs (decode_graph.py), per configuration
GRAPH_STATS = ("static_steps", "graph_captures", "graph_reuses", "graph_replays", "graph_failures")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:   # results measured on a GPU name it (torch is there wherever a benchmark runs)
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores visible, Python {platform.python_version()}{gpu}"


def profile_frame(a: argparse.Namespace, run: Any) -> dict | None:
    """One more frame under torch.profiler: its wall time, the time the GPU spent in kernels
    (the sum of their self times), how many kernels it launched, and the ops taking the most
    device (CPU: host) time. Where the kernels' time is far below the wall time, the frame is
    bound by launching them (Python and the framework per op), not by the GPU."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = a.device.startswith("cuda")
    try:
        acts = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
        with profile(activities=acts) as prof:
            t = time.perf_counter()
            run()
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - t
        kind = torch.autograd.DeviceType.CUDA
        # the kernels' own durations on the device (an op's self device time repeats its kernels'); not
        # the stages' ranges, which the device timeline holds too (spans, not kernels), nor CUPTI's
        # "Command Buffer Full" (the host waiting for room to launch)
        kernels = [e for e in prof.events() if e.device_type == kind and not e.name.startswith("vlm3::")
                   and e.name != "Command Buffer Full"] if cuda else []
        busy = sum(e.time_range.elapsed_us() for e in kernels) / 1e3 if cuda else None

        def self_us(e: Any) -> float:
            if cuda:
                return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)))
            return float(e.self_cpu_time_total)

        def total_us(e: Any) -> float:
            if cuda:
                return float(getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0.0)))
            return float(e.cpu_time_total)

        averages = prof.key_averages()
        ops = [e for e in averages if getattr(e, "device_type", None) != kind   # ops, not kernels
               and not e.key.startswith("vlm3::")]
        top = sorted(ops, key=self_us, reverse=True)[:10]
        # the engine's stages (vlm3::<stage> ranges in inference/local.py). The profiler lists each
        # twice: the host range (its time, and the device time of the kernels launched inside) and,
        # on CUDA, the same range on the device timeline (its span there, no host time).
        stages: dict[str, dict[str, Any]] = {}
        for e in averages:
            if not e.key.startswith("vlm3::"):
                continue
            st = stages.setdefault(e.key.removeprefix("vlm3::"), {"ms": 0.0, "host_ms": 0.0, "gpu_span_ms": None,
                                                                   "calls": 0})
            if float(e.cpu_time_total) > 0 or not cuda:
                st.update(ms=total_us(e) / 1e3, host_ms=float(e.cpu_time_total) / 1e3, calls=int(e.count))
            else:
                st["gpu_span_ms"] = total_us(e) / 1e3
        # each stage's own costliest ops: an op belongs to the innermost vlm3:: range above it
        by_stage: dict[str, dict[str, list[float]]] = {}
        for e in prof.events():
            if getattr(e, "device_type", None) == kind or e.name.startswith("vlm3::"):
                continue
            own = (float(getattr(e, "self_device_time_total", 0.0)) if cuda else float(e.self_cpu_time_total))
            parent = e.cpu_parent
            while parent is not None and not parent.name.startswith("vlm3::"):
                parent = parent.cpu_parent
            if own <= 0 or parent is None:
                continue
            cell = by_stage.setdefault(parent.name.removeprefix("vlm3::"), {}).setdefault(e.name[:60], [0.0, 0])
            cell[0] += own / 1e3
            cell[1] += 1
        for name, st in stages.items():
            st["ops"] = [{"op": op, "self_ms": v[0], "calls": v[1]}
                         for op, v in sorted(by_stage.get(name, {}).items(), key=lambda kv: -kv[1][0])[:6]]
        return {"wall_ms": wall * 1e3, "kernel_ms": busy, "kernels": len(kernels) if cuda else None,
                "top": [{"op": e.key[:60], "self_ms": self_us(e) / 1e3, "calls": int(e.count)} for e in top],
                "stages": [{"stage": k, **v} for k, v in stages.items()]}
    except Exception as e:   # a profiler problem must not cost the measurement
        print(f"profile failed: {e!r}", file=sys.stderr)
        return None


def header(modes: list[str]) -> str:
    cols = ["points/frame", *(f"{m} ms/frame" for m in modes), "engine vs naive", "engine vs replicated",
            *(f"{m} question prefill ms" for m in modes if m != "naive"),
            *(f"{m} answer step ms" for m in modes if m != "naive"),
            *(f"{m} attention+KV ms/step" for m in modes if m != "naive"), *(f"{m} peak MiB" for m in modes)]
    return "| " + " | ".join(cols) + " |"


def write_results(a: argparse.Namespace, rows: list[dict], argv: list[str] | None) -> list[str]:
    """Write the JSON and the Markdown table of ``rows``; returns the table's lines."""

    a.out.mkdir(parents=True, exist_ok=True)
    tag = f"engine_{a.arch}_{a.device.replace(':', '')}"
    if a.prefix_kernel != "auto":
        tag += f"_prefix-{a.prefix_kernel}"
    if a.decode_graph != param_default("model.decode_graph"):
        tag += f"_graph-{a.decode_graph}"
    if a.graph_slots != param_default("model.graph_slots"):
        tag += f"_slots{a.graph_slots}"
    tag += a.name_suffix
    meta = {"arch": a.arch, "device": a.device, "dtype": a.dtype, "answer_tokens": a.answer_tokens,
            "prefix_kernel": a.prefix_kernel, "decode_graph": a.decode_graph, "graph_slots": a.graph_slots,
            "batch_size": a.batch_size, "python": platform.python_version(), "machine": machine(),
            "cpu_count": os.cpu_count(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    (a.out / f"{tag}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    mem = "peak_gpu_mib" if a.device.startswith("cuda") else "peak_rss_mib"
    modes = [m for m in ("engine", "no-lead", "replicated", "naive") if any(r["mode"] == m for r in rows)]
    md = [f"# engine vs replicated vs naive ({a.arch}, {a.device}, {a.answer_tokens} answer tokens, "
          f"median of {a.frames} frames)", "",
          f"Measured {meta['date']}. Machine: {meta['machine']}. Command: "
          f"`python bench/engine_bench.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
          "engine: rows attend to one shared prefix KV (the questions' common leading tokens prefilled once); "
          + ("no-lead: the engine with every row prefilling its whole question; " if "no-lead" in modes else "")
          + "replicated: the prefix KV copied per row; naive: one "
          "generate per question. question prefill: the first forward over the batch's questions (after the "
          "image prefix); answer step: one decode step of a batch after it (one new token per row); "
          "attention+KV: of that step, the text layers' KV-cache updates and attention (the part sharing the "
          "prefix changes; timed on a CPU only, '-' elsewhere).", "",
          header(modes), "|" + "---|" * (3 + 2 * len(modes) + 3 * len([m for m in modes if m != "naive"]))]
    for pts in sorted({r["points"] for r in rows}):
        by = {m: next((r for r in rows if r["points"] == pts and r["mode"] == m), None) for m in modes}
        e, n, rep = by.get("engine"), by.get("naive"), by.get("replicated")
        cells = [f"{by[m]['frame_s'] * 1e3:.1f}" if by[m] else "-" for m in modes]
        naive_rows = [r for r in rows if r["mode"] == "naive"]
        if e and n:
            cells.append(f"{n['frame_s'] / e['frame_s']:.1f}x")
        elif e and naive_rows:   # naive grows linearly in points: its per-point time at the largest run
            big = max(naive_rows, key=lambda r: r["points"])
            cells.append(f"~{big['frame_s'] / big['points'] * pts / e['frame_s']:.0f}x (naive extrapolated "
                         f"from {big['points']} points)")
        else:
            cells.append("-")
        cells.append(f"{rep['frame_s'] / e['frame_s']:.2f}x" if e and rep else "-")
        for key in ("question_prefill_ms", "answer_step_ms", "attention_kv_ms"):
            cells += [f"{by[m][key]:.1f}" if by[m] and by[m].get(key) is not None else "-"
                      for m in modes if m != "naive"]
        cells += [f"{by[m][mem]:.0f}" if by[m] else "-" for m in modes]
        md.append(f"| {pts} | " + " | ".join(cells) + " |")
    if a.decode_graph == "cuda" and any(r.get("static_steps") for r in rows):
        md += ["", f"Answer steps with static shapes (`decode_graph: {a.decode_graph}`, `graph_slots: "
               f"{a.graph_slots}`), per configuration (all frames, warm-up included): " + "; ".join(
                   f"{r['points']} points: {r.get('static_steps', 0)} static steps, {r.get('graph_captures', 0)} "
                   f"graphs captured, {r.get('graph_reuses', 0)} batches on a kept graph, "
                   f"{r.get('graph_replays', 0)} replays, {r.get('graph_failures', 0)} failed captures"
                   for r in rows if r["mode"] != "naive")]
    for r in rows:
        pr = r.get("profile")
        if not pr:
            continue
        kern = (f"; GPU kernels {pr['kernel_ms']:.1f} ms ({pr['kernel_ms'] / pr['wall_ms']:.0%} of the wall time), "
                f"{pr['kernels']} kernels launched" if pr.get("kernel_ms") is not None else "")
        md += ["", f"Profile of one more {r['mode']} frame at {r['points']} points (torch.profiler): wall "
               f"{pr['wall_ms']:.1f} ms{kern}. Ops by self {'device' if kern else 'host'} time:", "",
               "| op | self ms | calls |", "|---|---|---|"]
        md += [f"| `{t['op']}` | {t['self_ms']:.1f} | {t['calls']} |" for t in pr["top"]]
        if pr.get("stages") and kern:
            md += ["", "By the engine's stages (`vlm3::` profiler ranges, all calls): the range's host time "
                       "(launches and waits included), its span on the GPU's timeline, and the device time of the "
                       "kernels launched inside it as the profiler attributes them:", "",
                   "| stage | host ms | GPU span ms | kernels' device ms | calls |", "|---|---|---|---|---|"]
            md += [f"| {st['stage']} | {st['host_ms']:.1f} | "
                   f"{'-' if st.get('gpu_span_ms') is None else format(st['gpu_span_ms'], '.1f')} | {st['ms']:.1f} | "
                   f"{st['calls']} |" for st in pr["stages"]]
        elif pr.get("stages"):
            md += ["", "By the engine's stages (`vlm3::` profiler ranges, host time):", "",
                   "| stage | host ms | calls |", "|---|---|---|"]
            md += [f"| {st['stage']} | {st['host_ms']:.1f} | {st['calls']} |" for st in pr["stages"]]
        if any(st.get("ops") for st in pr.get("stages") or []):
            md += ["", f"Each stage's costliest ops by self {'device' if kern else 'host'} time (an op counted in "
                       "the innermost stage range it ran in):", "", "| stage | op | self ms | calls |",
                   "|---|---|---|---|"]
            md += [f"| {st['stage']} | `{o['op']}` | {o['self_ms']:.1f} | {o['calls']} |"
                   for st in pr["stages"] for o in st.get("ops", [])]
    (a.out / f"{tag}.md").write_text("\n".join(md) + "\n")
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("tiny", "4b", "4b-narrow"), default="tiny")
    p.add_argument("--checkpoint", type=Path, default=ROOT / ".cache" / "vlm3_ros" / "tiny_qwen3_vl",
                   help="tiny checkpoint (tokenizer/processor also used for --arch 4b)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--points", default="1,8,64,256")
    p.add_argument("--modes", default="engine,replicated,naive")
    p.add_argument("--naive-max-points", type=int, default=256, help="skip naive runs above this many points")
    p.add_argument("--frames", type=int, default=3, help="timed frames per configuration (after 1 warm-up)")
    p.add_argument("--answer-tokens", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--prefix-kernel", default="auto", choices=("auto", "fused", "materialized"),
                   help="the engine's prefix attention (LocalModelConfig.prefix_kernel); other than auto, "
                        "the results files are named with it")
    p.add_argument("--decode-graph", default=param_default("model.decode_graph"), choices=("off", "static", "cuda"),
                   help="the engine's answer steps (node parameter model.decode_graph): cuda (default: static shapes, "
                        "on CUDA captured as a graph), static, or off; other than the default, the results files are "
                        "named with it")
    p.add_argument("--graph-slots", type=int, default=param_default("model.graph_slots"),
                   help="captured answer steps kept for later batches (model.graph_slots; 0: capture per batch); "
                        "other than the default, the results files are named with it")
    p.add_argument("--name-suffix", default="", help="appended to the results files' names "
                   "(engine_<arch>_<device><suffix>), so a partial run keeps the main files")
    p.add_argument("--profile", action="store_true",
                   help="profile one more frame per engine configuration (torch.profiler): GPU kernel time vs "
                        "wall time, kernels launched, the costliest ops; added to the Markdown table")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--_worker", nargs=2, metavar=("MODE", "POINTS"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._worker:
        print("RESULT " + json.dumps(worker(a, a._worker[0], int(a._worker[1]))))
        return 0
    from vlm3_ros.inference.assets import make_test_checkpoint

    make_test_checkpoint(a.checkpoint)
    rows, failed, md = [], [], []
    passthrough = [x for x in (argv if argv is not None else sys.argv[1:])]
    for pts in (int(x) for x in a.points.split(",")):
        for mode in a.modes.split(","):
            if mode == "naive" and pts > a.naive_max_points:
                continue
            r = subprocess.run([sys.executable, __file__, *passthrough, "--_worker", mode, str(pts)],
                               capture_output=True, text=True)
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
            if r.returncode or not line:   # say why, and go on: one failed configuration (memory) keeps the rest
                print(r.stdout[-2000:], r.stderr[-4000:], file=sys.stderr)
                print(f"{mode:>6} {pts:>4} points: FAILED (exit {r.returncode}), output above", flush=True)
                failed.append(f"{mode} {pts}")
                continue
            rows.append(json.loads(line[0][7:]))
            print(f"{mode:>6} {pts:>4} points: {rows[-1]['frame_s'] * 1000:9.1f} ms/frame "
                  f"{rows[-1]['points_per_s']:8.2f} points/s", flush=True)
            md = write_results(a, rows, argv)   # after every row: a run cut short by a time limit keeps its rows
    print("\n".join(md))
    if failed:
        print("failed configurations: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
