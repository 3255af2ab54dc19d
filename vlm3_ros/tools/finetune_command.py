"""``vlm3-ros finetune``: fine-tune a Qwen3-VL / VLM3 checkpoint on ``vlm3-ros export-sft`` samples.

transformers' Trainer runs the loop (checkpoints every --save-steps, --resume from the last one,
evaluation on val.jsonl, a progress bar); each step is one image set with up to --rows questions
on it, the image prefix computed once, the loss and logits on answer tokens only. LoRA adapters
are merged into the output weights, so OUT is a checkpoint the node loads unchanged
(model.<task>_path:=OUT); the adapter alone is kept in OUT/adapter. Writes OUT/finetune.json (losses,
steps, seconds per step) and OUT/loss.png.

  vlm3-ros finetune sft_data --base /models/VLM3-depth --out /models/VLM3-depth-myrobot --tasks depth
  vlm3-ros finetune sft_data --base /models/VLM3-pose --out out_pose --tasks pose --resume
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from vlm3_ros.training.finetune import EMBEDDINGS, METHODS, FinetuneConfig, finetune


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlm3-ros finetune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="an export-sft directory (train.jsonl, val.jsonl, images/)")
    p.add_argument("--base", type=Path, required=True, help="checkpoint to start from (a VLM3 task checkpoint)")
    p.add_argument("--out", type=Path, required=True, help="output checkpoint directory")
    p.add_argument("--method", choices=METHODS, default="lora", help="lora (merged at the end) or full")
    p.add_argument("--tasks", default="", help="comma-separated tasks to train on (default: all in the data); "
                                               "the released checkpoints are one per task")
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--epochs", type=float, default=0.0, help="> 0: this many epochs instead of --max-steps")
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (cosine schedule)")
    p.add_argument("--rows", type=int, default=16, help="questions per step on one image set")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--train-vision", action="store_true", help="also train the vision tower (default frozen)")
    p.add_argument("--train-embeddings", choices=EMBEDDINGS, default="none",
                   help="full: the token embeddings / tied LM head too: none (default), used (only the rows of "
                        "tokens in the samples), all")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), bfloat16, float32")
    p.add_argument("--eval-steps", type=int, default=50)
    p.add_argument("--save-steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT/trainer")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(a: argparse.Namespace, label: str = "") -> FinetuneConfig:
    return FinetuneConfig(data=str(a.data), base=str(a.base), out=str(a.out), method=a.method,
                          tasks=tuple(t for t in a.tasks.split(",") if t), max_steps=a.max_steps, epochs=a.epochs,
                          learning_rate=a.lr, rows=a.rows, grad_accum=a.grad_accum, lora_rank=a.lora_rank,
                          lora_alpha=a.lora_alpha, train_vision=a.train_vision, train_embeddings=a.train_embeddings,
                          device=a.device, dtype=a.dtype, eval_steps=a.eval_steps, save_steps=a.save_steps,
                          seed=a.seed, resume=a.resume, label=label)


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[finetune] %(message)s")
    try:
        record = finetune(config_from_args(a), show_progress=not a.no_progress)
    except (ValueError, OSError) as e:
        print(f"vlm3-ros finetune: {e}", file=sys.stderr)
        return 2
    summary = {k: record[k] for k in ("device", "steps", "s_per_step", "val_loss_before", "val_loss_after")}
    print(json.dumps(summary, indent=2))
    print(f"checkpoint: {a.out} (load with model.<task>_path:={a.out}); losses: {a.out / 'loss.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
