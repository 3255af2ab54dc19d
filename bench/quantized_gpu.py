"""Weight-only quantisation (model.quantization) on the true 4B shape with random weights: per
precision the weights' memory, the peak at 1 and 256 depth points, the answer-step and per-frame
times, the memory plan's figure beside each measured peak; then all four tasks loaded at once on
one device (four models of the precision): memory after loading, the peak and the per-frame times
of a frame on each.

  python bench/quantized_gpu.py --arch 4b --device cuda                     # bench/gpu_check.sh step quantized
  python bench/quantized_gpu.py --arch tiny --device cpu --points 8,1 --frames 1 --out /tmp/q   # rehearsal

Random weights answer nonsense; the answers are forced to --answer-tokens, as engine_bench does.
With --arch tiny the four tasks share the checkpoint's one model (the model registry): plumbing only.
Writes quantized_<arch>_<device>.{json,md}.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path
from typing import Any

from bench_common.backends import BenchModel, default_checkpoint
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20


def build(model: BenchModel, quantization: str) -> Any:
    """The depth backend of ``model`` at ``quantization`` (random weights quantised after building)."""
    from vlm3_ros.inference.assets import random_arch_model
    from vlm3_ros.inference.transformers_engine.model_loading import load_processor
    from vlm3_ros.inference.transformers_engine.quantize import quantize_model
    from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend

    cfg = model.backend_config("engine", {"model.quantization": quantization})
    if model.arch == "tiny":
        return TransformersBackend(cfg)
    net = random_arch_model(model.arch, model.device, model.dtype if model.dtype != "auto" else "bfloat16")
    if quantization != "none":
        quantize_model(net, quantization, model.device)
    return TransformersBackend(cfg, model=net, processor=load_processor(str(model.checkpoint)))


class Device:
    def __init__(self, device: str) -> None:
        import torch

        self.torch, self.cuda = torch, device.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def allocated_mib(self) -> float | None:
        return self.torch.cuda.memory_allocated() / MIB if self.cuda else None

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()

    def peak_mib(self) -> float | None:
        return self.torch.cuda.max_memory_allocated() / MIB if self.cuda else None

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()


def frames(backend: Any, model: BenchModel, points: int, count: int, dev: Device, seed: int = 0) -> dict[str, float]:
    """``count`` timed depth frames of ``points`` points after one warm-up: median frame ms and
    answer-step ms."""
    import numpy as np

    from vlm3_ros.geometry.camera import CameraModel
    from vlm3_ros.geometry.frame import Frame
    from vlm3_ros.readers.tum import TumSequence
    from vlm3_ros.tasks.pipeline import Pipeline

    seq = TumSequence()
    cam = CameraModel.from_camera_info(seq.camera_info)
    pipe = Pipeline({"depth": backend}, model.settings("engine").pipeline)
    rng = np.random.default_rng(seed)
    times, steps = [], []
    for k in range(count + 1):
        f = seq.frames[k % len(seq.frames)]
        frame = Frame(f.rgb(), cam, int(f.rgb_stamp * 1e9) + k + 1000 * seed, "cam")
        px = np.column_stack([rng.uniform(10, 630, points), rng.uniform(10, 470, points)])
        before = dict(backend.stats)
        dev.sync()
        t = time.perf_counter()
        pipe.depth(frame, px, "z_depth")
        dev.sync()
        if k:
            times.append(time.perf_counter() - t)
            n = backend.stats["answer_steps"] - before["answer_steps"]
            steps.append((backend.stats["answer_steps_s"] - before["answer_steps_s"]) / n if n else float("nan"))
    return {"frame_ms": float(np.median(times)) * 1e3, "answer_step_ms": float(np.median(steps)) * 1e3}


def planned_mib(backend: Any, quantization: str, points: int, answer_tokens: int) -> float:
    """The memory plan's total for this backend running ``points`` points (one frame, no cache)."""
    from vlm3_ros.inference.memory_plan import ModelShape, Workload, plan_backend, precision_of

    shape = ModelShape.from_config(backend.model.config.to_dict())
    cfg = backend.cfg
    precision, act = precision_of(quantization, cfg.dtype, str(backend.device))
    slots = cfg.graph_slots if str(backend.device).startswith("cuda") and cfg.decode_graph == "cuda" else 0
    work = Workload(rows=min(points, cfg.batch_size), question_tokens=86, answer_tokens=answer_tokens,
                    prefix_cache_mib=cfg.prefix_cache_mb, graph_slots=min(slots, 1))
    return plan_backend(shape, precision, act, work, cuda=str(backend.device).startswith("cuda")).total / MIB


def per_precision(a: argparse.Namespace, model: BenchModel, q: str, dev: Device) -> list[dict[str, Any]]:
    from vlm3_ros.inference.transformers_engine.quantize import stored_bytes

    dev.free()
    base = dev.allocated_mib() or 0.0
    t0 = time.monotonic()
    backend = build(model, q)
    load_s = time.monotonic() - t0
    weights = stored_bytes(backend.model) / MIB
    rows = []
    try:
        for points in (int(x) for x in a.points.split(",")):
            dev.reset_peak()
            r = frames(backend, model, points, a.frames, dev)
            peak = dev.peak_mib()
            rows.append({"quantization": q, "points": points, "weights_mib": weights, "load_s": load_s,
                         "allocated_after_load_mib": None if peak is None else (dev.allocated_mib() or 0) - base,
                         "peak_mib": None if peak is None else peak - base,
                         "planned_mib": planned_mib(backend, q, points, a.answer_tokens), **r})
            print(rows[-1], flush=True)
    finally:
        backend.close()
        del backend
        dev.free()
    return rows


def four_at_once(a: argparse.Namespace, model: BenchModel, q: str, dev: Device) -> dict[str, Any]:
    """Four models of precision ``q`` loaded together (the four tasks), a frame on each in turn."""
    dev.free()
    base = dev.allocated_mib() or 0.0
    backends = []
    try:
        for _ in range(4):
            backends.append(build(model, q))
        after = dev.allocated_mib()
        loaded = None if after is None else after - base
        dev.reset_peak()
        times = {str(p): [frames(b, model, p, a.frames, dev, seed=i)["frame_ms"] for i, b in enumerate(backends)]
                 for p in (int(x) for x in a.points.split(","))}
        peak = dev.peak_mib()
        out = {"quantization": q, "loaded_mib": loaded, "peak_mib": None if peak is None else peak - base,
               "frame_ms_per_task": times}
    except Exception as e:   # out of memory at bf16 is a result here, not a crash
        out = {"quantization": q, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}",
               "loaded_models": len(backends)}
    finally:
        for b in backends:
            b.close()
        backends.clear()
        dev.free()
    print(out, flush=True)
    return out


def markdown(a: argparse.Namespace, rows: list[dict], four: list[dict]) -> list[str]:
    def cell(v: Any, fmt: str = ".0f") -> str:
        return "-" if v is None else format(v, fmt)

    md = [f"Random weights of the {a.arch} shape on {a.device} ({a.dtype}), {a.answer_tokens} forced answer tokens, "
          f"batch size {a.batch_size}, median of {a.frames} frames after one warm-up; MiB above what the device "
          "held before the model; planned: the memory plan (vlm3_ros/inference/memory_plan.py) for the same "
          "workload (one kept graph: one batch shape per configuration).", "",
          "| quantization | points | weights MiB | peak MiB | planned MiB | frame ms | answer step ms |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['quantization']} | {r['points']} | {r['weights_mib']:.0f} | {cell(r['peak_mib'])} | "
           f"{r['planned_mib']:.0f} | {r['frame_ms']:.1f} | {r['answer_step_ms']:.2f} |" for r in rows]
    md += ["", "All four tasks loaded at once (four models; a frame on each in turn):", "",
           "| quantization | loaded MiB | peak MiB | frame ms per task |", "|---|---|---|---|"]
    for f in four:
        if "error" in f:
            md.append(f"| {f['quantization']} | - | - | failed after {f['loaded_models']} models: {f['error']} |")
            continue
        times = "; ".join(f"{p} points: " + ", ".join(f"{t:.0f}" for t in ts)
                          for p, ts in f["frame_ms_per_task"].items())
        md.append(f"| {f['quantization']} | {cell(f['loaded_mib'])} | {cell(f['peak_mib'])} | {times} |")
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="4b", help="4b | 4b-narrow (random weights) | tiny (the checkpoint)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--precisions", default="none,int8,int4")
    p.add_argument("--points", default="256,1")
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--answer-tokens", type=int, default=25)
    p.add_argument("--no-four", action="store_true", help="skip the four-at-once step")
    p.add_argument("--checkpoint", type=Path, default=None, help="tokenizer/processor (default: the tiny checkpoint)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    a.checkpoint = a.checkpoint or default_checkpoint()
    model = BenchModel(a.checkpoint, a.arch, a.device, a.dtype, a.batch_size, a.answer_tokens)
    dev = Device(a.device)
    writer = ResultsWriter(a.out, f"quantized_{a.arch}_{a.device.split(':')[0]}", command_line(__file__, argv))
    rows: list[dict] = []
    four: list[dict] = []
    title = "Weight-only quantisation: memory and speed per precision, four tasks at once"
    for q in a.precisions.split(","):
        rows += per_precision(a, model, q, dev)
        writer.write(title, {"meta": {"arch": a.arch, "device": a.device}, "rows": rows, "four": four},
                     markdown(a, rows, four))
    if not a.no_four:
        for q in reversed(a.precisions.split(",")):      # smallest first: bf16 x 4 may not fit
            four.append(four_at_once(a, model, q, dev))
            writer.write(title, {"meta": {"arch": a.arch, "device": a.device}, "rows": rows, "four": four},
                         markdown(a, rows, four))
    print("\n".join(markdown(a, rows, four)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
