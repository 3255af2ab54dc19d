"""ESTIMATED ms per depth frame on common robot GPUs, per precision: bench/engine_floor.py's compute
floor at each GPU's datasheet dense bf16 rate and memory bandwidth, times the ratio of the engine's
measured frame to the floor on the H200 (bench/results/engine_4b_cuda.json over
engine_floor_4b_cuda.json, per point count). Arithmetic, not a measurement: no GPU in the table
was run; the datasheet figures are listed with the results so they can be corrected.

Quantised weights change only what an answer step reads (the text layers at 1 or 0.5 bytes per
weight, the shared embedding/output layer at 2); the H200's bf16 ratio is applied to them too,
since no quantised frame has been measured on a GPU yet.

  python bench/hardware_estimates.py            # writes bench/results/hardware_estimates.{json,md}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_common.floor import floor
from bench_common.results import ResultsWriter, command_line

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CONFIG = ROOT / "vlm3_ros" / "data" / "qwen3_vl_4b_instruct_config.json"
# name: (dense bf16/fp16 tensor TFLOP/s with fp32 accumulation, memory TB/s), datasheet figures
GPUS = {"RTX 3060 12GB": (25.6, 0.360), "RTX 4080 16GB": (97.5, 0.717), "RTX 4090 24GB": (165.2, 1.008),
        "L4 24GB": (121.0, 0.300), "Jetson Orin NX 16GB": (15.0, 0.102), "Jetson AGX Orin 32GB": (27.0, 0.205),
        "Jetson AGX Orin 64GB": (42.5, 0.205), "Jetson AGX Thor 128GB": (258.0, 0.273)}
TOKENS = {1: (0, 86), 8: (12, 74), 256: (12, 74)}     # (shared lead, own tokens): engine_floor_4b_cuda.md
WEIGHT_BYTES = {"bfloat16": 2.0, "int8": 1.0, "int4": 0.5}
PREFIX, ANSWER = 1136, 25


def frame_floor_ms(points: int, peak: float, bandwidth: float, precision: str, conf: dict) -> float:
    lead, own = TOKENS[points]
    f = floor(points, lead, own, PREFIX, ANSWER, conf)
    t = conf["text_config"]
    embed_gb = 2 * t["hidden_size"] * t["vocab_size"] / 1e9
    weights_gb = (f["weights_gb"] - embed_gb) * WEIGHT_BYTES[precision] / 2 + embed_gb
    compute_s = (f["vision_tflop"] + f["prefix_tflop"] + f["questions_tflop"]) / peak
    per_step = max(f["answer_tflop"] / ANSWER / peak, weights_gb / 1e3 / bandwidth)
    return (compute_s + ANSWER * per_step) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    conf = json.loads(CONFIG.read_text())
    engine_rows = json.loads((RESULTS / "engine_4b_cuda.json").read_text())["rows"]
    measured = {r["points"]: r["frame_s"] * 1e3 for r in engine_rows if r["mode"] == "engine"}
    h200 = json.loads((RESULTS / "engine_floor_4b_cuda.json").read_text())
    ratio = {r["points"]: measured[r["points"]] / r["floor_ms"] for r in h200["rows"] if r["points"] in TOKENS}
    rows = [{"gpu": g, "peak_tflops": peak, "bandwidth_tbs": bw, "precision": prec,
             **{f"floor_ms_{n}": frame_floor_ms(n, peak, bw, prec, conf) for n in TOKENS},
             **{f"ms_{n}": frame_floor_ms(n, peak, bw, prec, conf) * ratio[n] for n in TOKENS}}
            for g, (peak, bw) in GPUS.items() for prec in WEIGHT_BYTES]
    body = ["ESTIMATES (no GPU below was run), ms per depth frame as floor .. estimate: the floor at the datasheet "
            "rates (the least the work can take), and the floor x the H200's measured/floor ratio "
            + ", ".join(f"{ratio[n]:.2f} at {n} point{'s' if n > 1 else ''}" for n in TOKENS)
            + " (the H200's overheads scaled with the work: pessimistic where a GPU is slower). "
            "Quantised rows reuse the bf16 ratio.", "",
            "| GPU | dense bf16 TFLOP/s | TB/s | precision | ms/frame 1 point | 8 points | 256 points |",
            "|---|---|---|---|---|---|---|"]
    body += [f"| {r['gpu']} | {r['peak_tflops']:g} | {r['bandwidth_tbs']:g} | {r['precision']} | "
             + " | ".join(f"{r[f'floor_ms_{n}']:.0f} .. {r[f'ms_{n}']:.0f}" for n in TOKENS) + " |" for r in rows]
    writer = ResultsWriter(a.out, "hardware_estimates", command_line(__file__, argv))
    md = writer.write("Estimated depth-frame times on robot GPUs (arithmetic, not measured)",
                      {"meta": {"ratio": ratio, "prefix": PREFIX, "answer_tokens": ANSWER}, "rows": rows}, body)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
