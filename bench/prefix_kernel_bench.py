"""The shared prefix's attention kernels side by side: fused (a kernel that returns the log-sum-exp
and never writes the scores) vs materialised scores, at the 4B's attention shapes, plus a token
check of the engine with each kernel against naive generate on the tiny checkpoint.

  python bench/prefix_kernel_bench.py                                  # CPU, float32 and bfloat16
  python bench/prefix_kernel_bench.py --device cuda --rows 8,64,256    # CUDA's memory-efficient kernel

Per (dtype, rows, queries per row): the median time of ``shared_prefix.prefix_attention`` with
each kernel over --repeats calls (after one warm-up), and each kernel's largest error against a
float64 reference (output and log-sum-exp). Shapes: the 4B's 32 query heads on 8 KV heads of 128,
folded as the engine folds them (a KV head's 4 query heads x rows x queries); the prefix is the
image prefix of one bag frame at the depth task's 1000 px focal length (1136 tokens); queries per
row: 72 (a depth question's own tokens after the shared leading ones, its prefill) and 1 (an
answer step). --identity: the tiny checkpoint in float32 on --device answers 32 depth questions
with each kernel and naively, then as answer steps captured as a CUDA graph (static steps where no
CUDA), then in batches of 8 on two frames on kept graphs, then with both attention parts in one
FlexAttention call (``prefix_kernel: flex``) and with the answer step compiled (``compile_step``;
on CUDA also compiled with flex); the answers must be the same tokens. Writes JSON and Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench_common.backends import BenchModel, default_checkpoint
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent

HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128     # Qwen3-VL-4B's text attention
KERNELS = ("fused", "materialized")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_kernels(device: str, dtype_name: str, rows: int, queries: int, prefix: int, repeats: int) -> dict[str, Any]:
    import torch

    from vlm3_ros.inference import shared_prefix as sp

    dtype = getattr(torch, dtype_name)
    g = torch.Generator(device="cpu").manual_seed(rows * 1000 + queries)
    n = rows * (HEADS // KV_HEADS) * queries
    q = torch.randn(KV_HEADS, n, HEAD_DIM, generator=g).to(device, dtype)
    pk = torch.randn(1, KV_HEADS, prefix, HEAD_DIM, generator=g).to(device, dtype)
    pv = torch.randn(1, KV_HEADS, prefix, HEAD_DIM, generator=g).to(device, dtype)
    scale = HEAD_DIM ** -0.5
    # float64 reference, in chunks of queries so it fits beside the rest
    ref_o, ref_l = [], []
    for c in range(0, n, 4096):
        s = torch.matmul(q[:, c:c + 4096].double() * scale, pk[0].double().transpose(-1, -2))
        ref_l.append(torch.logsumexp(s, -1, keepdim=True))
        ref_o.append(torch.matmul(torch.softmax(s, -1), pv[0].double()))
    want_o, want_l = torch.cat(ref_o, 1), torch.cat(ref_l, 1)
    out: dict[str, Any] = {"dtype": dtype_name, "rows": rows, "queries": queries, "prefix": prefix,
                           "folded_queries": n}
    for kernel in KERNELS:
        if kernel == "fused" and sp.fused_prefix_kernel(q.device, dtype, "fused") is None:
            out[kernel] = None   # this build or device has no fused kernel with log-sum-exp
            continue
        times = []
        with torch.inference_mode():
            for k in range(repeats + 1):
                _sync(device)
                t = time.perf_counter()
                o, lse = sp.prefix_attention(q, pk, pv, scale, kernel)
                _sync(device)
                if k:
                    times.append(time.perf_counter() - t)
        out[kernel] = {"ms": statistics.median(times) * 1e3, "repeats": len(times),
                       "max_abs_err_out": float((o.double() - want_o).abs().max()),
                       "max_abs_err_lse": float((lse.double() - want_l).abs().max())}
        del o, lse
    return out


def identity(device: str, checkpoint: Path, questions: int) -> dict[str, Any]:
    """The engine's answers with each kernel vs naive generate (tiny checkpoint, float32)."""
    from dataclasses import replace

    import numpy as np

    from vlm3_ros.contract.prompts import PromptSet
    from vlm3_ros.contract.question import Question
    from vlm3_ros.inference.assets import make_test_checkpoint
    from vlm3_ros.readers.tum import TumSequence

    make_test_checkpoint(checkpoint)
    img = TumSequence().frames[0].rgb()
    rng = np.random.default_rng(0)
    prompts = PromptSet()
    qs = [Question("identity", (img,), prompts.render_depth(*rng.integers(0, 2000, 2)), max_new_tokens=8)
          for _ in range(questions)]
    # the node's configuration on --device in float32 (answers not forced: each question says its length)
    base = BenchModel(checkpoint, device=device, dtype="float32", batch_size=questions, answer_tokens=8,
                      force_answers=False)

    def engine(prefix_kernel: str = "auto", **params: Any) -> Any:
        return replace(base, prefix_kernel=prefix_kernel,
                       params=tuple((f"model.{k}", v) for k, v in params.items())).backend("engine")

    naive = base.backend("naive")
    want = [a.text for a in naive.answer(qs)]
    out: dict[str, Any] = {"questions": questions, "distinct_answers": len(set(want))}
    for kernel in KERNELS:   # answer steps as the default runs them (decode_graph cuda)
        eng = engine(kernel)
        got = [a.text for a in eng.answer(qs)]
        eng.close()
        out[kernel] = sum(a == b for a, b in zip(got, want, strict=True))
    # the answer steps as one captured CUDA graph per batch (decode_graph.py; static shapes elsewhere)
    eng = engine(decode_graph="cuda")
    got = [a.text for a in eng.answer(qs)]
    out["decode_graph"] = sum(a == b for a, b in zip(got, want, strict=True))
    out["graph_stats"] = {k: eng.stats[k] for k in ("static_steps", "graph_captures", "graph_replays",
                                                     "graph_failures")}
    eng.close()
    # kept graphs (decode_graph.GraphPool): four batches of one shape on two frames, the last three
    # on the first one's graph (4-digit coordinates: every question the same length)
    eng = replace(base, batch_size=questions // 4, params=(("model.decode_graph", "cuda"),
                                                          ("model.graph_slots", 2))).backend("engine")
    same = 0
    for i, f in enumerate(TumSequence().frames[:2]):
        kq = [Question(f"kept{i}", (f.rgb(),), prompts.render_depth(*rng.integers(1000, 2000, 2)), max_new_tokens=8)
              for _ in range(questions // 2)]
        same += sum(a.text == b.text for a, b in zip(eng.answer(kq), naive.answer(kq), strict=True))
    out["kept_graphs"] = same
    out["kept_stats"] = {k: eng.stats[k] for k in ("graph_captures", "graph_reuses", "graph_replays",
                                                    "graph_failures")}
    eng.close()
    # both parts in one FlexAttention call; the answer step compiled (torch.compile, at configure),
    # replayed as CUDA graphs on CUDA; compiled with flex only on CUDA (inductor has no CPU lowering)
    variants = {"flex": ("flex", {}), "compiled": ("auto", {"compile_step": True, "decode_graph": "cuda"})}
    if device.startswith("cuda"):
        variants["compiled_flex"] = ("flex", {"compile_step": True, "decode_graph": "cuda"})
    for name, (kernel, params) in variants.items():
        eng = engine(kernel, **params)
        got = [a.text for a in eng.answer(qs)]
        out[name] = sum(a == b for a, b in zip(got, want, strict=True))
        out[f"{name}_stats"] = {k: eng.stats[k] for k in ("compiled_graphs", "recompiles", "warmup_s",
                                                           "graph_captures")}
        eng.close()
    naive.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--rows", default="8,64", help="batch rows (256 needs ~2.6 GB of float32 scores per call)")
    p.add_argument("--queries", default="72,1", help="queries per row: a question's prefill, an answer step")
    p.add_argument("--prefix", type=int, default=1136, help="prefix tokens (one bag frame's image prefix)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per configuration (median)")
    p.add_argument("--identity", action="store_true", help="also check the engine's tokens with each kernel")
    p.add_argument("--checkpoint", type=Path, default=None, help="default: $VLM3_CACHE/tiny_qwen3_vl")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    if a.repeats < 3:
        p.error("--repeats must be >= 3 (medians of at least 3)")
    a.checkpoint = a.checkpoint or default_checkpoint()
    writer = ResultsWriter(a.out, f"prefix_kernel_{a.device.replace(':', '')}", command_line(__file__, argv))
    rows = []
    for dtype in a.dtypes.split(","):
        for n in (int(x) for x in a.rows.split(",")):
            for qn in (int(x) for x in a.queries.split(",")):
                r = time_kernels(a.device, dtype, n, qn, a.prefix, a.repeats)
                rows.append(r)
                print(json.dumps(r), flush=True)
    check = identity(a.device, a.checkpoint, 32) if a.identity else None
    meta = {"device": a.device, "prefix": a.prefix, "heads": HEADS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM,
            "repeats": a.repeats}
    md = [f"The prefix part of the engine's attention (`shared_prefix.prefix_attention`) at Qwen3-VL-4B's "
          f"shapes ({HEADS} query heads on {KV_HEADS} KV heads of {HEAD_DIM}; {a.prefix} prefix tokens), one "
          f"layer: fused = a kernel returning the log-sum-exp without writing the scores (CPU: "
          f"`_scaled_dot_product_flash_attention_for_cpu`; CUDA: `_scaled_dot_product_efficient_attention`); "
          f"materialized = the (queries x prefix) scores written once. Error: largest absolute difference "
          f"from a float64 reference. queries/row 72: a depth question's prefill; 1: an answer step.", "",
          "| dtype | rows | queries/row | fused ms | materialized ms | fused/materialized | fused err (out, lse) "
          "| materialized err (out, lse) |", "|---|---|---|---|---|---|---|---|"]

    def ms(k: dict | None) -> str:
        return f"{k['ms']:.2f}" if k else "-"

    def err(k: dict | None) -> str:
        return f"{k['max_abs_err_out']:.1e}, {k['max_abs_err_lse']:.1e}" if k else "-"

    for r in rows:
        f, m = r["fused"], r["materialized"]
        ratio = f"{f['ms'] / m['ms']:.2f}" if f and m else "-"
        md.append(f"| {r['dtype']} | {r['rows']} | {r['queries']} | {ms(f)} | {ms(m)} | {ratio} | {err(f)} "
                  f"| {err(m)} |")
    if check:
        md += ["", f"Engine tokens vs naive generate (tiny checkpoint, float32, {a.device}, {check['questions']} "
               f"depth questions, {check['distinct_answers']} distinct answers): "
               + ", ".join(f"{k} {check[k]}/{check['questions']} identical" for k in KERNELS)
               + f"; answer steps as a CUDA graph (`decode_graph: cuda`, static shapes where no CUDA) "
               f"{check['decode_graph']}/{check['questions']} identical ("
               + ", ".join(f"{k} {v}" for k, v in check["graph_stats"].items()) + ")"
               + (f"; batches of {check['questions'] // 4} on kept graphs (`graph_slots: 2`, two frames) "
                  f"{check['kept_graphs']}/{check['questions']} identical ("
                  + ", ".join(f"{k} {v}" for k, v in check["kept_stats"].items()) + ")" if "kept_graphs" in check
                  else "")
               + "".join(f"; {name} {check[name]}/{check['questions']} identical ("
                         + ", ".join(f"{k} {v}" for k, v in check[f"{name}_stats"].items()) + ")"
                         for name in ("flex", "compiled", "compiled_flex") if name in check) + "."]
    md = writer.write(f"Shared-prefix attention kernels ({a.device}, median of {a.repeats} calls)",
                      {"meta": meta, "rows": rows, "identity": check}, md)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
