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

Each (mode, points) configuration runs --runs times (default 3), each run in its own process, so
peak memory is its own and a machine whose speed drifts between runs shows it: the results quote
each configuration's median run and list the spread of all runs (bench_common.repeats). Answers are
forced to --answer-tokens new tokens (the depth answer with its think block is about 25), since
random weights would otherwise stop at arbitrary lengths. Writes JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench_common.backends import BenchModel, default_checkpoint, param_default
from bench_common.profiling import profile_call, profile_markdown
from bench_common.repeats import median_run, result_line, run_worker
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent


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
    from vlm3_ros.readers.tum import TumSequence
    from vlm3_ros.tasks.pipeline import Pipeline

    seq = TumSequence()
    cam = CameraModel.from_camera_info(seq.camera_info)
    model = BenchModel.from_args(a)
    backend = model.backend(mode)
    if a.device.startswith("cuda"):   # the peak of serving: the 4B is built in float32, then cast
        torch.cuda.reset_peak_memory_stats()
    pipe = Pipeline({"depth": backend}, model.settings(mode).pipeline)
    clock = None
    if a.device == "cpu" and mode != "naive" and not a.compile_step:   # (a clock would break the compiled graph)
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
        prof = profile_call(a.device, lambda: pipe.depth(Frame(f.rgb(), cam, int(f.rgb_stamp * 1e9) + 10**6, "cam"), px,
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
GRAPH_STATS = ("static_steps", "graph_captures", "graph_reuses", "graph_replays", "graph_failures",
               "compiled_graphs", "recompiles", "warmup_s", "configure_s")


def results_name(a: argparse.Namespace) -> str:
    """engine_<arch>_<device>, plus every engine option other than the node's default, plus --name-suffix."""
    tag = f"engine_{a.arch}_{a.device.replace(':', '')}"
    if a.prefix_kernel != "auto":
        tag += f"_prefix-{a.prefix_kernel}"
    if a.decode_graph != param_default("model.decode_graph"):
        tag += f"_graph-{a.decode_graph}"
    if a.graph_slots != param_default("model.graph_slots"):
        tag += f"_slots{a.graph_slots}"
    if a.compile_step:
        tag += "_compiled"
    return tag + a.name_suffix


def header(modes: list[str]) -> str:
    cols = ["points/frame", *(f"{m} ms/frame" for m in modes), "engine vs naive", "engine vs replicated",
            *(f"{m} question prefill ms" for m in modes if m != "naive"),
            *(f"{m} answer step ms" for m in modes if m != "naive"),
            *(f"{m} attention+KV ms/step" for m in modes if m != "naive"), *(f"{m} peak MiB" for m in modes)]
    return "| " + " | ".join(cols) + " |"


def main_table(a: argparse.Namespace, rows: list[dict]) -> list[str]:
    """Per points: every mode's median run side by side."""
    mem = "peak_gpu_mib" if a.device.startswith("cuda") else "peak_rss_mib"
    modes = [m for m in ("engine", "no-lead", "replicated", "naive") if any(r["mode"] == m for r in rows)]
    md = [header(modes), "|" + "---|" * (3 + 2 * len(modes) + 3 * len([m for m in modes if m != "naive"]))]
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
    return md


def spread_table(rows: list[dict]) -> list[str]:
    """Per configuration: its runs' ms/frame (each a median over frames), min / median / max."""
    md = ["| points/frame | mode | runs | min ms/frame | median ms/frame | max ms/frame | max/min | quoted run "
          "| each run's ms/frame, in order |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["points"], r["mode"])):
        s = r["frame_s_spread"]
        ratio = f"{s['max_over_min']:.2f}" if s.get("max_over_min") else "-"
        md.append(f"| {r['points']} | {r['mode']} | {s['runs']} | {s['min'] * 1e3:.1f} | {s['median'] * 1e3:.1f} | "
                  f"{s['max'] * 1e3:.1f} | {ratio} | run {s['median_run']} | "
                  + ", ".join(f"{v * 1e3:.1f}" for v in s["values"]) + " |")
    return md


def markdown(a: argparse.Namespace, rows: list[dict], stopped: str) -> list[str]:
    """The results page's body: what the modes and columns are, the median runs' table, the spread
    of the runs, the CUDA-graph counts and any profiles."""
    modes = {r["mode"] for r in rows}
    md = ["engine: rows attend to one shared prefix KV (the questions' common leading tokens prefilled once); "
          + ("no-lead: the engine with every row prefilling its whole question; " if "no-lead" in modes else "")
          + "replicated: the prefix KV copied per row; naive: one "
          "generate per question. question prefill: the first forward over the batch's questions (after the "
          "image prefix); answer step: one decode step of a batch after it (one new token per row); "
          "attention+KV: of that step, the text layers' KV-cache updates and attention (the part sharing the "
          "prefix changes; timed on a CPU only, '-' elsewhere).", "",
          f"Runs: {a.runs} asked for per configuration, each run in its own process (run 1 of every "
          "configuration, then run 2, ...), each run's figures the median of its frames. Every figure in the "
          "first table is the configuration's median run (the run whose ms/frame is the median of the runs'; "
          "ratios compare median runs); the second table gives every configuration's runs and their spread."
          + (f" {stopped}" if stopped else ""), "",
          *main_table(a, rows), "", *spread_table(rows)]
    if a.decode_graph == "cuda" and any(r.get("static_steps") for r in rows):
        md += ["", f"Answer steps with static shapes (`decode_graph: {a.decode_graph}`, `graph_slots: "
               f"{a.graph_slots}`), per configuration (the median run's frames, warm-up included): " + "; ".join(
                   f"{r['points']} points: {r.get('static_steps', 0)} static steps, {r.get('graph_captures', 0)} "
                   f"graphs captured, {r.get('graph_reuses', 0)} batches on a kept graph, "
                   f"{r.get('graph_replays', 0)} replays, {r.get('graph_failures', 0)} failed captures"
                   for r in rows if r["mode"] != "naive")]
    for r in rows:
        if r.get("profile"):
            md += profile_markdown(f"one more {r['mode']} frame at {r['points']} points (the median run's)",
                                   r["profile"])
    return md


def combine(results: dict[tuple[str, int], list[dict]]) -> list[dict]:
    """One row per configuration: its median run by ms/frame, with the spread over its runs."""
    return [median_run(runs, "frame_s") for runs in results.values() if runs]


def write_results(a: argparse.Namespace, writer: ResultsWriter, results: dict[tuple[str, int], list[dict]],
                  stopped: str = "") -> list[str]:
    """Write the JSON and the Markdown page of the runs so far (``stopped``: why fewer runs than
    asked for); returns the page's lines."""
    rows = combine(results)
    meta = {"arch": a.arch, "device": a.device, "dtype": a.dtype, "answer_tokens": a.answer_tokens,
            "prefix_kernel": a.prefix_kernel, "decode_graph": a.decode_graph, "graph_slots": a.graph_slots,
            "compile_step": a.compile_step,
            "batch_size": a.batch_size, "frames": a.frames, "runs": a.runs,
            "quoted": "each configuration's median run by frame_s; frame_s_spread: min / median / max over its runs",
            **({"stopped": stopped} if stopped else {})}
    compared = " vs ".join(m for m in ("engine", "no-lead", "replicated", "naive") if m in a.modes.split(","))
    title = (f"{compared} ({a.arch}, {a.device}, {a.answer_tokens} answer tokens, median of {a.frames} frames, "
             f"median of {a.runs} runs)")
    return writer.write(title, {"meta": meta, "rows": rows, "runs": [r for rs in results.values() for r in rs]},
                        markdown(a, rows, stopped))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("tiny", "4b", "4b-narrow"), default="tiny")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="tiny checkpoint (tokenizer/processor also used for --arch 4b); default: "
                        "$VLM3_CACHE/tiny_qwen3_vl")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--points", default="1,8,64,256")
    p.add_argument("--modes", default="engine,replicated,naive")
    p.add_argument("--naive-max-points", type=int, default=256, help="skip naive runs above this many points")
    p.add_argument("--frames", type=int, default=3, help="timed frames per configuration (after 1 warm-up)")
    p.add_argument("--runs", type=int, default=3,
                   help="separate runs (processes) per configuration; the results quote the median run and list "
                        "the spread (min / median / max of the runs' medians)")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="start no further round of runs once it would end after this many seconds (0: no limit); "
                        "the results then say how many runs each configuration got")
    p.add_argument("--answer-tokens", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--prefix-kernel", default="auto", choices=("auto", "fused", "materialized", "flex"),
                   help="the engine's prefix attention (TransformersConfig.prefix_kernel); other than auto, "
                        "the results files are named with it")
    p.add_argument("--decode-graph", default=param_default("model.decode_graph"), choices=("off", "static", "cuda"),
                   help="the engine's answer steps (node parameter model.decode_graph): cuda (default: static shapes, "
                        "on CUDA captured as a graph), static, or off; other than the default, the results files are "
                        "named with it")
    p.add_argument("--graph-slots", type=int, default=param_default("model.graph_slots"),
                   help="captured answer steps kept for later batches (model.graph_slots; 0: capture per batch); "
                        "other than the default, the results files are named with it")
    p.add_argument("--compile-step", action="store_true",
                   help="answer steps compiled with torch.compile at configure (node parameter model.compile_step; "
                        "configure_s, warmup_s, compiled_graphs and recompiles per configuration); the results "
                        "files are named with _compiled")
    p.add_argument("--name-suffix", default="", help="appended to the results files' names "
                   "(engine_<arch>_<device><suffix>), so a partial run keeps the main files")
    p.add_argument("--profile", action="store_true",
                   help="profile one more frame per engine configuration (torch.profiler): GPU kernel time vs "
                        "wall time, kernels launched, the costliest ops; added to the Markdown table")
    p.add_argument("--note", default="", help="a sentence written into the results files (e.g. what else ran on the "
                   "machine)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--_worker", nargs=2, metavar=("MODE", "POINTS"), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    if a.runs < 1:
        p.error("--runs must be >= 1")
    a.checkpoint = a.checkpoint or default_checkpoint()
    if a._worker:
        print(result_line(worker(a, a._worker[0], int(a._worker[1]))))
        return 0
    from vlm3_ros.inference.assets import make_test_checkpoint

    make_test_checkpoint(a.checkpoint)
    args = list(sys.argv[1:] if argv is None else argv)
    writer = ResultsWriter(a.out, results_name(a), command_line(__file__, args), [a.note])
    configs = [(mode, pts) for pts in (int(x) for x in a.points.split(",")) for mode in a.modes.split(",")
               if not (mode == "naive" and pts > a.naive_max_points)]
    results: dict[tuple[str, int], list[dict]] = {c: [] for c in configs}
    failed: list[str] = []
    md: list[str] = []
    started, stopped = time.perf_counter(), ""
    for run in range(1, a.runs + 1):
        elapsed = time.perf_counter() - started
        if run > 1 and a.max_seconds and elapsed + elapsed / (run - 1) > a.max_seconds:
            stopped = (f"Stopped after {run - 1} of {a.runs} runs: another round would have ended after "
                       f"--max-seconds {a.max_seconds:g}.")
            print(stopped, flush=True)
            break
        for mode, pts in configs:
            w = run_worker([__file__, *args, "--checkpoint", str(a.checkpoint), "--_worker", mode, str(pts)])
            if w.result is None:   # say why, and go on: one failed configuration (memory) keeps the rest
                print(w.failure(), file=sys.stderr)
                print(f"run {run}: {mode:>6} {pts:>4} points: FAILED, output above", flush=True)
                failed.append(f"{mode} {pts} (run {run})")
                continue
            results[(mode, pts)].append({**w.result, "run": run})
            print(f"run {run}: {mode:>6} {pts:>4} points: {w.result['frame_s'] * 1000:9.1f} ms/frame "
                  f"{w.result['points_per_s']:8.2f} points/s", flush=True)
            # after every configuration: a run cut short by a time limit keeps what it measured
            md = write_results(a, writer, results)
    if stopped and any(results.values()):
        md = write_results(a, writer, results, stopped)
    print("\n".join(md))
    if failed:
        print("failed configurations: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
