#!/usr/bin/env python3
"""One fine-tuning step, ours vs the naive way, side by side in one run.

ours (vlm3_ros.training.objective.answer_loss): one image set per step, its vision features
computed once per run (frozen tower), the image prefix once per step, R question rows against it,
LM-head logits at answer tokens only. naive (plain_loss): the same R questions as whole
conversations through the model's own forward (vision + prefix per question, full-vocabulary
logits at every position). Same samples, same trainable weights, same AdamW; forward + backward +
optimiser step, median of --steps steps after one warm-up step.

  python bench/finetune_step.py                          # tiny checkpoint, CPU, full fine-tuning
  python bench/finetune_step.py --method lora --rows 4,16
  python bench/finetune_step.py --arch 4b --device cuda --method lora --rows 16,64   # GPU: the 4B, random weights

Writes bench/results/finetune_step_<arch>_<device>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common.backends import default_checkpoint
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent


def on_device(batch: Any, device: str) -> Any:
    """``batch`` with its tensors on ``device`` (the Trainer does this in a real run; the builders
    return CPU tensors)."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: on_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [on_device(v, device) for v in batch]
    return batch


def measure(a: argparse.Namespace, data: Path, rows: int, mode: str) -> dict:
    import numpy as np
    import torch

    from vlm3_ros.training.batches import BatchBuilder, frame_groups, full_sequences
    from vlm3_ros.training.finetune import FinetuneConfig, load_for_training
    from vlm3_ros.training.objective import FrozenVisionFeatures, answer_loss, plain_loss
    from vlm3_ros.training.sft_samples import read_jsonl

    cfg = FinetuneConfig(data=str(data), base=str(a.checkpoint), out=str(data / "unused"), method=a.method,
                         device=a.device)
    model = processor = None
    if a.arch != "tiny":   # random weights of the true architecture, the tiny checkpoint's processor
        from vlm3_ros.inference.assets import random_arch_model
        from vlm3_ros.inference.transformers_engine.model_loading import load_processor

        model = random_arch_model(a.arch, a.device, "bfloat16" if a.device.startswith("cuda") else "float32")
        processor = load_processor(str(a.checkpoint))
    model, processor, _ = load_for_training(cfg, model, processor)
    if a.device.startswith("cuda"):   # the step's peak, not the float32 build's
        torch.cuda.reset_peak_memory_stats()
    builder = BatchBuilder(processor)
    groups = [g for g in frame_groups(read_jsonl(data / "train.jsonl"), data, rows) if len(g.samples) == rows]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vision = FrozenVisionFeatures()
    times = []
    for k in range(a.steps + 1):       # step 0 warms up (and fills the vision cache, as a run does)
        g = groups[k % len(groups)]
        t = time.perf_counter()
        if mode == "ours":
            loss = answer_loss(model, on_device(builder(g), a.device), vision)
        else:
            loss = plain_loss(model, on_device(full_sequences(builder, g), a.device))
        loss.backward()
        opt.step()
        opt.zero_grad()
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        if k:
            times.append(time.perf_counter() - t)
    med = float(np.median(times))
    peak = torch.cuda.max_memory_allocated() / 2**20 if a.device.startswith("cuda") else None
    return {"mode": mode, "rows": rows, "step_s": med, "questions_per_s": rows / med, "steps": len(times),
            "peak_gpu_mib": peak}


def measure_or_oom(a: argparse.Namespace, data: Path, rows: int, mode: str) -> dict:
    """``measure``, or a row that says the step did not fit in the device's memory (the naive step
    holds every question's whole conversation and full-vocabulary logits: it runs out first)."""
    import gc

    import torch

    try:
        return measure(a, data, rows, mode)
    except torch.OutOfMemoryError as e:
        msg = str(e).splitlines()[0]
    finally:   # the model of this measurement goes before the next is built
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return {"mode": mode, "rows": rows, "step_s": None, "questions_per_s": None, "steps": 0, "peak_gpu_mib": None,
            "error": f"out of memory: {msg}"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("tiny", "4b", "4b-narrow"), default="tiny",
                   help="4b: the true Qwen3-VL-4B architecture with random weights (bf16 on CUDA)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="default: $VLM3_CACHE/tiny_qwen3_vl (its tokenizer/processor also serve --arch 4b)")
    p.add_argument("--method", choices=("full", "lora"), default="full")
    p.add_argument("--rows", default="4,16", help="questions per step")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    import torch

    from vlm3_ros.eval.dataset import EvalOptions
    from vlm3_ros.inference.assets import make_test_checkpoint
    from vlm3_ros.params.mapping import settings_from
    from vlm3_ros.readers.tum import BAG_PATHS
    from vlm3_ros.training.export import ExportOptions, export_bags

    a.checkpoint = a.checkpoint or make_test_checkpoint(default_checkpoint())
    arch = a.arch if a.arch != "tiny" else ("tiny" if "tiny" in str(a.checkpoint) else Path(a.checkpoint).name)
    dev = "cuda" if a.device.startswith("cuda") else "cpu"
    writer = ResultsWriter(a.out, f"finetune_step_{arch}_{dev}", command_line(__file__, argv))
    data = Path(tempfile.mkdtemp(prefix="vlm3_ft_bench_"))
    export_bags([BAG_PATHS["mcap"]], data, settings_from({}, require_backend=False).pipeline,
                ExportOptions(EvalOptions(tasks=("depth",), points_per_frame=64), val_fraction=0.0),
                show_progress=False)
    rows_list = [int(r) for r in a.rows.split(",")]
    results = []
    for rows in rows_list:
        for mode in ("ours", "naive"):
            r = measure_or_oom(a, data, rows, mode)
            print(json.dumps(r))
            results.append(r)
    out = {"what": "one fine-tuning step (forward + backward + AdamW), depth questions on the bundled TUM frames",
           "checkpoint": str(a.checkpoint), "method": a.method, "device": a.device,
           "torch_threads": torch.get_num_threads(), "results": results}
    lines = [f"torch threads {out['torch_threads']}. Median of {a.steps} steps after one warm-up step.", "",
             "| questions per step | ours s/step | naive s/step | speed-up | ours questions/s | ours peak MiB "
             "| naive peak MiB |",
             "|---|---|---|---|---|---|---|"]

    def cell(r: dict, key: str, fmt: str) -> str:
        if r.get("error"):
            return "out of memory" if r["error"].startswith("out of memory") else "failed"
        return "-" if r.get(key) is None else format(r[key], fmt)

    for rows in rows_list:
        o = next(r for r in results if r["rows"] == rows and r["mode"] == "ours")
        n = next(r for r in results if r["rows"] == rows and r["mode"] == "naive")
        speed = f"{n['step_s'] / o['step_s']:.1f}x" if o["step_s"] and n["step_s"] else "-"
        lines.append(f"| {rows} | {cell(o, 'step_s', '.3f')} | {cell(n, 'step_s', '.3f')} | {speed} | "
                     f"{cell(o, 'questions_per_s', '.1f')} | {cell(o, 'peak_gpu_mib', '.0f')} | "
                     f"{cell(n, 'peak_gpu_mib', '.0f')} |")
    md = writer.write(f"Fine-tuning step: ours vs naive ({arch}, {a.method}, {dev})", out, lines, meta_key=None)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
