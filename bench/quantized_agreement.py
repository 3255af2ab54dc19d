"""Weight-only int8 / int4 (model.quantization) against full precision on the TOY demo model's
held-out frames: per task the share of replies identical to full precision's, the parse rate, and
for depth the delta1 (and its difference from full precision's); the weights' bytes of each.

  python bench/quantized_agreement.py                       # float32 on the CPU, then int8 and int4
  python bench/quantized_agreement.py --precisions none,int8 --dtype bfloat16

The TOY model is the tiny Qwen3-VL architecture fine-tuned on three frames of the bundled bag
(vlm3-ros make-demo-model): NOT VLM3; it answers in the contract's formats, so parse rates and
agreement mean something, its depth numbers do not. Writes quantized_toy_<device>.{json,md}.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent


def toy_model(cache: Path) -> Path:
    """The TOY demo model's folder (built from the stored weights when missing)."""
    from vlm3_ros.tools import demo_model
    from vlm3_ros.training import toy

    out = demo_model.default_dir()
    if not (out / "config.json").is_file():
        toy.build(out, cache)
    return out


def run(model: Path, data: Path, device: str, dtype: str, quantization: str) -> dict[str, Any]:
    from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
    from vlm3_ros.inference.transformers_engine.quantize import stored_bytes
    from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend
    from vlm3_ros.training.heldout import ask, score
    from vlm3_ros.training.sft_samples import read_jsonl, split_files

    samples = read_jsonl(split_files(data)["val"])
    t0 = time.monotonic()
    backend = TransformersBackend(TransformersConfig(str(model), device=device, dtype=dtype, batch_size=32,
                                                     quantization=quantization))
    load_s = time.monotonic() - t0
    try:
        t0 = time.monotonic()
        replies = ask(backend, samples, data)
        answer_s = time.monotonic() - t0
        weights = stored_bytes(backend.model)
    finally:
        backend.close()
    return {"quantization": quantization, "samples": samples, "replies": replies, "scores": score(samples, replies),
            "weights_bytes": weights, "load_s": load_s, "answer_s": answer_s}


def agreement(ref: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    by_task: dict[str, list[bool]] = {}
    for s, a, b in zip(ref["samples"], ref["replies"], other["replies"], strict=True):
        by_task.setdefault(s.task, []).append(a == b)
    return {t: sum(v) / len(v) for t, v in sorted(by_task.items())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precisions", default="none,int8,int4", help="model.quantization values; the first is the "
                   "reference")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto", help="activation dtype (auto: float32 on the CPU)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    from vlm3_ros.tools import demo_model, ros_env

    model = toy_model(ros_env.cache_dir())
    writer = ResultsWriter(a.out, f"quantized_toy_{a.device.split(':')[0]}", command_line(__file__, argv))
    with tempfile.TemporaryDirectory() as tmp:
        data = demo_model.export_recipe_data(Path(tmp) / "data")
        runs = [run(model, data, a.device, a.dtype, q) for q in a.precisions.split(",")]
    ref = runs[0]
    rows = []
    for r in runs:
        same = agreement(ref, r)
        s = r["scores"]
        rows.append({"quantization": r["quantization"], "weights_mib": r["weights_bytes"] / 2**20,
                     "load_s": r["load_s"], "answer_s": r["answer_s"], "identical_to_reference": same,
                     "parse_rate": {t: s[t]["parse_rate"] for t in sorted(s)},
                     "depth_delta1": s["depth"]["delta1"],
                     "depth_delta1_minus_reference": s["depth"]["delta1"] - ref["scores"]["depth"]["delta1"],
                     "samples": len(r["samples"])})
    tasks = sorted(rows[0]["parse_rate"])
    body = [f"TOY demo model (tiny Qwen3-VL, 2 layers, 64 wide; NOT VLM3), {rows[0]['samples']} held-out questions "
            f"of the bundled bag (export's val split), device {a.device}, activations {a.dtype}; reference: "
            f"{rows[0]['quantization']}. Identical: the share of replies equal to the reference's, character for "
            "character.", "",
            "| quantization | weights MiB | " + " | ".join(f"{t} identical" for t in tasks) + " | "
            + " | ".join(f"{t} parse rate" for t in tasks) + " | depth delta1 | delta1 - reference | answer s |",
            "|---|---|" + "---|" * (2 * len(tasks)) + "---|---|---|"]
    for r in rows:
        body.append(f"| {r['quantization']} | {r['weights_mib']:.1f} | "
                    + " | ".join(f"{r['identical_to_reference'][t]:.3f}" for t in tasks) + " | "
                    + " | ".join(f"{r['parse_rate'][t]:.3f}" for t in tasks)
                    + f" | {r['depth_delta1']:.3f} | {r['depth_delta1_minus_reference']:+.3f} | {r['answer_s']:.1f} |")
    md = writer.write("Weight-only quantisation vs full precision on the TOY model's held-out frames",
                      {"meta": {"device": a.device, "dtype": a.dtype, "reference": rows[0]["quantization"]},
                       "rows": rows}, body)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
