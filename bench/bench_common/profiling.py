"""One call under torch.profiler, split by the engine's stages (the ``vlm3::<stage>`` ranges the
engine opens): wall time, the GPU's kernel time and kernel count, the costliest ops overall and
per stage; and its Markdown tables."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def profile_call(device: str, run: Callable[[], Any]) -> dict | None:
    """``run()`` once under torch.profiler: its wall time, the time the GPU spent in kernels (the
    sum of their self times), how many kernels it launched, and the ops taking the most device
    (CPU: host) time. Where the kernels' time is far below the wall time, the call is bound by
    launching them (Python and the framework per op), not by the GPU. None if profiling failed."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
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
        # the engine's stages. The profiler lists each twice: the host range (its time, and the device
        # time of the kernels launched inside) and, on CUDA, the same range on the device timeline (its
        # span there, no host time).
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


def profile_markdown(what: str, pr: dict) -> list[str]:
    """The Markdown of one ``profile_call`` result; ``what`` names the profiled call."""
    kern = (f"; GPU kernels {pr['kernel_ms']:.1f} ms ({pr['kernel_ms'] / pr['wall_ms']:.0%} of the wall time), "
            f"{pr['kernels']} kernels launched" if pr.get("kernel_ms") is not None else "")
    md = ["", f"Profile of {what} (torch.profiler): wall {pr['wall_ms']:.1f} ms{kern}. Ops by self "
          f"{'device' if kern else 'host'} time:", "", "| op | self ms | calls |", "|---|---|---|"]
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
    return md
