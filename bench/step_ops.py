#!/usr/bin/env python3
"""Operations per answer step: how many PyTorch (aten) operations one decode step dispatches, for
the engine (dynamic, static and compiled answer steps) and for naive generate, side by side in one run.

On a GPU an answer step of the 4B is bound by launching its kernels, one or more per operation
that is not a view (docs/engine.md, "On a GPU"), so this count, which does not depend on the
machine, predicts what a change does to the step there. Counted with a TorchDispatchMode over
every forward with one new token per row: all operations, those that run a kernel (views,
reshapes and slices excluded), and of these the ones inside the text layers' attention function.
The compiled step (``model.compile_step``) is counted from the profiler instead: each kernel
inductor generated and each library kernel the compiled code calls (allocations and views left out).

  python bench/step_ops.py                  # tiny checkpoint (2 text layers; the 4B has 36)

Writes bench/results/step_ops_tiny.{json,md}.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Any

from bench_common.backends import BenchModel, default_checkpoint
from bench_common.repeats import result_line, run_worker
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent

ANSWER_TOKENS = 6   # per question: the steps counted per frame

# operations that only make a new view of a tensor: no kernel on any device
VIEWS = frozenset({"view", "_unsafe_view", "unsqueeze", "squeeze", "slice", "select", "reshape", "transpose", "t",
                   "expand", "permute", "alias", "detach", "as_strided", "unbind", "split", "split_with_sizes",
                   "chunk", "narrow", "resolve_conj", "resolve_neg", "lift_fresh", "_reshape_alias", "unfold"})
# operations that only allocate (compiled code allocates its buffers itself): no kernel
ALLOCATIONS = frozenset({"empty", "empty_strided", "empty_like", "resize_", "set_"})
MODES = ("engine-off", "engine-static", "engine-compiled", "naive")


def count(mode: str, checkpoint: Path, questions: int) -> dict[str, Any]:
    import numpy as np
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from transformers import AttentionInterface
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from vlm3_ros.contract.prompts import PromptSet
    from vlm3_ros.contract.question import Question
    from vlm3_ros.readers.tum import TumSequence

    # the node's configuration (its defaults, answers not forced: each question says its length)
    params = () if mode == "naive" else (("model.decode_graph", mode.split("-")[1]),)
    model = BenchModel(checkpoint, batch_size=questions, answer_tokens=ANSWER_TOKENS, params=params,
                       force_answers=False)
    backend = model.backend("naive" if mode == "naive" else "engine")
    layers = backend.model.config.get_text_config().num_hidden_layers

    class Counter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.on, self.in_attention = False, False
            self.ops: collections.Counter[str] = collections.Counter()
            self.attention_ops = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            # under inference_mode composite ops (matmul, reshape, to, softmax) arrive whole: count
            # the ops they decompose into instead (a reshape that copies is a clone, a matmul a bmm)
            if self.on and torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd"):
                with self:   # inside this method the mode is off: back on, so the parts are counted
                    out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
            if self.on:
                name = func.overloadpacket.__name__
                self.ops[name] += 1
                if self.in_attention and name not in VIEWS:
                    self.attention_ops += 1
            return func(*args, **kwargs)

    c = Counter()
    inner = backend.model.model
    forward = inner.forward
    steps = {"n": 0}

    def counted(*a: Any, **k: Any) -> Any:   # only forwards with one new token per row: answer steps
        ids = k.get("input_ids")
        c.on = ids is not None and ids.shape[1] == 1
        steps["n"] += int(c.on)
        try:
            return forward(*a, **k)
        finally:
            c.on = False

    def wrap(fn: Any) -> Any:
        def attention(*a: Any, **k: Any) -> Any:
            c.in_attention = True
            try:
                return fn(*a, **k)
            finally:
                c.in_attention = False
        return attention

    inner.forward = counted
    impl = backend.model.config.get_text_config()._attn_implementation
    AttentionInterface.register(impl, wrap(ALL_ATTENTION_FUNCTIONS[impl]))
    img = TumSequence().frames[0].rgb()
    rng = np.random.default_rng(0)
    prompts = PromptSet()
    qs = [Question("ops", (img,), prompts.render_depth(*rng.integers(0, 2000, 2)), max_new_tokens=ANSWER_TOKENS)
          for _ in range(questions)]
    with c:
        backend.answer(qs)
    backend.close()
    n = max(steps["n"], 1)
    total = sum(c.ops.values()) / n
    kernels = sum(v for k, v in c.ops.items() if k not in VIEWS) / n
    return {"mode": mode, "text_layers": layers, "answer_steps": steps["n"], "ops_per_step": total,
            "kernel_ops_per_step": kernels, "kernel_ops_per_layer": kernels / layers,
            "attention_kernel_ops_per_layer": c.attention_ops / n / layers,
            "top": collections.Counter({k: v / n for k, v in c.ops.items() if k not in VIEWS}).most_common(8)}


def count_compiled(mode: str, checkpoint: Path, questions: int, prefix_kernel: str = "auto") -> dict[str, Any]:
    """The compiled answer step (``model.compile_step``): what one step runs, from the profiler. Each
    kernel inductor generated is a profiler event of its own (``cpp.enable_kernel_profile``), and the
    library kernels the compiled code calls (matrix products, attention) are events under the same
    call; allocations and views are left out, as in the eager count."""
    import collections

    import numpy as np
    import torch._inductor.config as inductor_config
    from torch.profiler import ProfilerActivity, profile

    from vlm3_ros.contract.prompts import PromptSet
    from vlm3_ros.contract.question import Question
    from vlm3_ros.readers.tum import TumSequence

    inductor_config.cpp.enable_kernel_profile = True
    model = BenchModel(checkpoint, batch_size=questions, answer_tokens=ANSWER_TOKENS, prefix_kernel=prefix_kernel,
                       force_answers=False, params=(("model.compile_step", True), ("model.decode_graph", "static")))
    backend = model.backend("engine")
    layers = backend.model.config.get_text_config().num_hidden_layers
    img = TumSequence().frames[0].rgb()
    rng = np.random.default_rng(0)
    prompts = PromptSet()
    qs = [Question("ops", (img,), prompts.render_depth(*rng.integers(0, 2000, 2)), max_new_tokens=ANSWER_TOKENS)
          for _ in range(questions)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        backend.answer(qs)
    stats = dict(backend.stats)
    backend.close()
    events = list(prof.events())
    calls = {e.id for e in events if e.name.startswith("## Call CompiledFxGraph")}
    ops: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.cpu_parent is not None and e.cpu_parent.id in calls:
            name = "inductor kernel" if "cpp_fused" in e.name or "triton_" in e.name else e.name.split("::")[-1]
            if name not in VIEWS and name not in ALLOCATIONS:
                ops[name] += 1
    n = max(len(calls), 1)
    kernels = sum(ops.values()) / n
    return {"mode": mode, "text_layers": layers,
            "answer_steps": len(calls), "ops_per_step": kernels, "kernel_ops_per_step": kernels,
            "kernel_ops_per_layer": kernels / layers, "attention_kernel_ops_per_layer": None,
            "recompiles": stats["recompiles"], "warmup_s": stats["warmup_s"],
            "top": collections.Counter({k: v / n for k, v in ops.items()}).most_common(8)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=None, help="default: $VLM3_CACHE/tiny_qwen3_vl")
    p.add_argument("--questions", type=int, default=8, help="questions per frame (rows of the engine's batch)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--name-suffix", default="", help="appended to the results files' names (step_ops_tiny<suffix>), "
                   "e.g. for a run on an earlier version of the engine")
    p.add_argument("--_worker", metavar="MODE", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.checkpoint = a.checkpoint or default_checkpoint()
    if a._worker:
        counter = count_compiled if a._worker == "engine-compiled" else count
        print(result_line(counter(a._worker, a.checkpoint, a.questions)))
        return 0
    from vlm3_ros.inference.assets import make_test_checkpoint

    make_test_checkpoint(a.checkpoint)
    writer = ResultsWriter(a.out, f"step_ops_tiny{a.name_suffix}", command_line(__file__, argv))
    rows = []
    for mode in MODES:   # each in its own process: registries stay clean
        w = run_worker([__file__, "--checkpoint", str(a.checkpoint), "--questions", str(a.questions),
                        "--_worker", mode])
        if w.result is None:
            print(w.failure(), file=sys.stderr)
            return 1
        rows.append(w.result)
    body = [f"{a.questions} depth questions on one frame, {ANSWER_TOKENS} answer tokens. "
            "Counted with a TorchDispatchMode over every forward with one new token per row. kernel ops: "
            "the operations that are not views (each launches at least one kernel on a GPU). engine-off: the "
            "engine's dynamic answer steps; engine-static: static shapes (`decode_graph: static`, what a CUDA "
            "graph captures); engine-compiled: the static step compiled with torch.compile (`model.compile_step`), "
            "counted from the profiler (each generated kernel and each library kernel the compiled code calls, "
            "allocations and views left out; `inductor kernel`: a generated kernel); naive: transformers' "
            "generate with SDPA. Per layer: divide by the text layers (2 here, 36 in the 4B, which has the same "
            "layer structure; the embedding, final norm and output layer are counted in the step too).", "",
            "| mode | ops per step | kernel ops per step | kernel ops per layer | of them in attention per layer "
            "| most frequent kernel ops per step |", "|---|---|---|---|---|---|"]
    for r in rows:
        top = ", ".join(f"{k} {v:.0f}" for k, v in r["top"])
        attention = r["attention_kernel_ops_per_layer"]
        body.append(f"| {r['mode']} | {r['ops_per_step']:.0f} | {r['kernel_ops_per_step']:.0f} | "
                    f"{r['kernel_ops_per_layer']:.1f} | {'n/a' if attention is None else f'{attention:.1f}'} | {top} |")
    md = writer.write("Operations per answer step (tiny checkpoint; counts, not times)",
                      {"meta": {"questions": a.questions}, "rows": rows}, body)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
