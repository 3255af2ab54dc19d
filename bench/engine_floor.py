"""The compute floor of one depth frame on the true Qwen3-VL-4B: the floating-point work the engine
must do for N points, and the time that work takes at a given accelerator peak. Arithmetic, not a
measurement: it says which latency targets a GPU can reach at all with the contract's prompt.

  python bench/engine_floor.py                        # H100/H200 dense bf16 peak (989 TFLOP/s)
  python bench/engine_floor.py --peak-tflops 312 --bandwidth-tbs 2.0   # an A100 80GB
  python bench/engine_floor.py --measure cuda         # this GPU's own ceilings, measured first

Counted (multiply-add = 2 FLOP): the vision encoder over the frame's patches, the image prefix's
prefill, every question's own tokens after the shared leading ones (padded to the longest, as the
engine batches them) and the answer steps (every row: the text layers and the output layer), each
with its attention over the prefix. Token counts come from the real tokenizer and the contract's
depth prompt (coordinates drawn as the benchmark draws them); the prefix from the image token
count of one bag frame at the depth task's 1000 px focal length. Memory traffic is counted for the
answer steps (every weight read once per step): a step costs at least the larger of the two.

--measure DEVICE replaces the datasheet figures with the device's own: an 8192^3 bf16 matrix
product on random data and a 4 GiB device-to-device copy (bytes read plus written), each the median
of 10 timed runs after 3 warm-ups (CUDA events). Writes engine_floor_4b_<device>.{json,md} then.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_common.backends import default_checkpoint
from bench_common.floor import floor
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "vlm3_ros" / "data" / "qwen3_vl_4b_instruct_config.json"


def question_tokens(checkpoint: Path, points: int, seed: int = 0) -> tuple[int, int]:
    """(shared leading tokens, own tokens per row padded to the batch's longest) for ``points``
    depth questions with random coordinates, tokenised as the engine does."""
    import numpy as np
    from transformers import AutoTokenizer

    from vlm3_ros.contract.prompts import PromptSet
    from vlm3_ros.inference.transformers_engine.prefix_engine import common_lead_length

    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    prompts = PromptSet()
    rng = np.random.default_rng(seed)
    ids = [tok(prompts.render_depth(*rng.integers(0, 2000, 2)) + "<|im_end|>\n<|im_start|>assistant\n",
               add_special_tokens=False)["input_ids"] for _ in range(points)]
    lead = common_lead_length(ids)
    return lead, max(len(s) for s in ids) - lead


def measure_ceilings(device: str) -> dict[str, float | str]:
    """The device's bf16 matrix rate (TFLOP/s) and copy bandwidth (TB/s), measured: the ceilings
    real kernels meet, below the datasheet's."""
    import torch

    def median_ms(fn, reps: int = 10) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return sorted(times)[reps // 2]

    n = 8192
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))   # never zeros
    mm_ms = median_ms(lambda: a @ b)
    src = torch.randn(2**31, device=device, dtype=torch.bfloat16)   # 4 GiB, far above the L2
    dst = torch.empty_like(src)
    copy_ms = median_ms(lambda: dst.copy_(src))
    return {"peak_tflops": 2 * n**3 / mm_ms / 1e9, "bandwidth_tbs": 2 * src.nbytes / copy_ms / 1e9,
            "device_name": torch.cuda.get_device_name(device)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", default="1,8,64,256")
    p.add_argument("--answer-tokens", type=int, default=25,
                   help="answer length (the depth answer with its think block)")
    p.add_argument("--prefix", type=int, default=1136, help="image prefix tokens (one bag frame at fx 1000)")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM / H200: 989)")
    p.add_argument("--bandwidth-tbs", type=float, default=4.8, help="memory bandwidth, TB/s (H200: 4.8)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="the offline tokenizer (vlm3-ros make-test-checkpoint builds it); default: "
                        "$VLM3_CACHE/tiny_qwen3_vl")
    p.add_argument("--measure", metavar="DEVICE", help="measure DEVICE's (a CUDA device's) matrix rate and copy "
                   "bandwidth and use them instead of --peak-tflops / --bandwidth-tbs")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    a.checkpoint = a.checkpoint or default_checkpoint()
    tag = "engine_floor_4b" + (f"_{a.measure.split(':')[0]}" if a.measure else "")
    writer = ResultsWriter(a.out, tag, command_line(__file__, argv))
    measured: dict[str, float | str] = {}
    if a.measure:
        measured = measure_ceilings(a.measure)
        a.peak_tflops, a.bandwidth_tbs = float(measured["peak_tflops"]), float(measured["bandwidth_tbs"])
    conf = json.loads(CONFIG.read_text())
    rows = []
    for n in (int(x) for x in a.points.split(",")):
        lead, own = question_tokens(a.checkpoint, n)
        f = floor(n, lead, own, a.prefix, a.answer_tokens, conf)
        compute_s = (f["vision_tflop"] + f["prefix_tflop"] + f["questions_tflop"]) / a.peak_tflops
        per_step = max(f["answer_tflop"] / a.answer_tokens / a.peak_tflops, f["weights_gb"] / 1e3 / a.bandwidth_tbs)
        rows.append({"points": n, "shared_lead_tokens": lead, "own_tokens": own, **f,
                     "floor_ms": (compute_s + a.answer_tokens * per_step) * 1e3,
                     "questions_ms": f["questions_tflop"] / a.peak_tflops * 1e3,
                     "answer_ms": a.answer_tokens * per_step * 1e3})
    meta = {"peak_tflops": a.peak_tflops, "bandwidth_tbs": a.bandwidth_tbs, "prefix": a.prefix,
            "answer_tokens": a.answer_tokens, "config": str(CONFIG.relative_to(ROOT)), "measured": measured}
    rates = (f"At {a.peak_tflops:.0f} TFLOP/s and {a.bandwidth_tbs:.2f} TB/s measured on {measured['device_name']} "
             "(an 8192^3 bf16 matrix product on random data, a 4 GiB copy; medians of 10)" if measured else
             f"At {a.peak_tflops:g} TFLOP/s (bf16, dense) and {a.bandwidth_tbs:g} TB/s")
    body = [f"{rates}, {a.prefix} image-prefix tokens, {a.answer_tokens} answer tokens; every "
            f"answer step reads the {rows[0]['weights_gb']:.1f} GB of bf16 weights once. The floor is the "
            f"time at these rates: real kernels reach a fraction of them.", "",
            "| points | shared leading tokens | own tokens/row | vision + prefix TFLOP | questions TFLOP "
            "| answer steps TFLOP | questions ms at peak | answer steps ms at peak | floor ms/frame |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        body.append(f"| {r['points']} | {r['shared_lead_tokens']} | {r['own_tokens']} | "
                    f"{r['vision_tflop'] + r['prefix_tflop']:.1f} | {r['questions_tflop']:.1f} | "
                    f"{r['answer_tflop']:.1f} | "
                    f"{r['questions_ms']:.1f} | {r['answer_ms']:.1f} | {r['floor_ms']:.1f} |")
    md = writer.write("Compute floor of a depth frame on Qwen3-VL-4B (arithmetic"
                      + (" at this GPU's measured ceilings)" if measured else ", not a measurement)"),
                      {"meta": meta, "rows": rows}, body)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
