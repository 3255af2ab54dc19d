"""``vlm3-ros make-demo-model``: the TOY demo model (NOT VLM3), built or retrained.

Default: rebuild the checkpoint from the trained weights kept in the repository (seconds), then
score it on the bundled bag's held-out frames (the export's val split: parse rate per task, depth
delta1 beside the best constant predictor). ``--retrain`` reruns the recipe with the package's own
commands first (export-sft on the bundled bag, finetune of the tiny architecture; minutes on CPU)
and, with ``--write-weights``, replaces the repository's weights.

  vlm3-ros make-demo-model                                   # into $VLM3_CACHE/toy_vlm3_demo
  vlm3-ros make-demo-model --retrain --write-weights --results bench/results/toy_demo_model_cpu.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from vlm3_ros.tools import ros_env


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def default_dir() -> Path:
    return ros_env.cache_dir() / "toy_vlm3_demo"


def export_recipe_data(out: Path) -> Path:
    from vlm3_ros.eval.dataset import EvalOptions
    from vlm3_ros.params.mapping import settings_from
    from vlm3_ros.training import toy
    from vlm3_ros.training.export import ExportOptions, export_bags

    e = toy.RECIPE["export"]
    opts = ExportOptions(EvalOptions(tasks=tuple(e["tasks"]), points_per_frame=e["points_per_frame"],
                                     corr_points=e["corr_points"], object_questions=e["object_questions"],
                                     seed=e["seed"]), val_fraction=e["val_fraction"])
    export_bags([toy.bag()], out, settings_from({}, require_backend=False).pipeline, opts,
                show_progress=False)
    return out


def retrain(work: Path, show_progress: bool) -> tuple[Path, dict[str, Any]]:
    from vlm3_ros.training import toy
    from vlm3_ros.training.finetune import FinetuneConfig, finetune

    data = export_recipe_data(work / "data")
    base = toy.toy_base(ros_env.cache_dir())
    cfg = FinetuneConfig(data=str(data), base=str(base), out=str(work / "model"), label=toy.LABEL,
                         **toy.RECIPE["finetune"])
    record = finetune(cfg, show_progress=show_progress)
    return work / "model", record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vlm3-ros make-demo-model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, nargs="?", default=None, help="checkpoint directory (default: in $VLM3_CACHE)")
    p.add_argument("--retrain", action="store_true", help="rerun the recipe (export-sft + finetune) first")
    p.add_argument("--work", type=Path, default=None, help="with --retrain: where data and the run go")
    p.add_argument("--write-weights", action="store_true",
                   help="with --retrain: replace the repository's vlm3_ros/data/toy_model/toy_weights.safetensors")
    p.add_argument("--no-score", action="store_true", help="skip the held-out scoring")
    p.add_argument("--results", type=Path, default=None, help="also write the scores (and the run) to this JSON")
    p.add_argument("--force", action="store_true", help="rebuild even if OUT is up to date")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[make-demo-model] %(message)s")
    from vlm3_ros.training import toy
    from vlm3_ros.training.heldout import score_checkpoint

    out = a.out or default_dir()
    run: dict[str, Any] = {}
    weights = toy.WEIGHTS
    if a.retrain:
        work = a.work or out.parent / (out.name + "_run")
        model, record = retrain(work, show_progress=True)
        run = {k: record[k] for k in ("steps", "s_per_step", "train_s", "val_loss_before", "val_loss_after")}
        base = toy.toy_base(ros_env.cache_dir())
        if a.write_weights:
            size = toy.write_weights(model, base)
            print(f"wrote {toy.WEIGHTS} ({size / 1024:.0f} KiB)")
        else:
            weights = work / "toy_weights.safetensors"
            toy.write_weights(model, base, weights)
    t0 = time.monotonic()
    toy.build(out, ros_env.cache_dir(), weights, force=a.force or a.retrain)
    print(f"TOY demo model (NOT VLM3) at {out} ({time.monotonic() - t0:.1f}s)")
    if a.no_score:
        return 0
    data = export_recipe_data(out / "heldout_data")
    held = score_checkpoint(out, data, "val", show_progress=True)
    (out / "heldout.json").write_text(json.dumps(held, indent=2))
    for task, sc in held["scores"].items():
        extra = ""
        if task == "depth":
            extra = f", delta1 {sc['delta1']:.3f} vs best constant {sc['best_constant_delta1']:.3f}"
        elif task == "object":
            extra = f", success {sc['success']:.3f} vs best constant {sc['best_constant_success']:.3f}"
        print(f"held-out {task}: {sc['n']} questions, parse rate {sc['parse_rate']:.3f}{extra}")
    if a.results:
        from vlm3_ros.eval.report import versions

        a.results.parent.mkdir(parents=True, exist_ok=True)
        a.results.write_text(json.dumps({
            "what": toy.LABEL, "command": "vlm3-ros make-demo-model " + " ".join(argv or sys.argv[1:]),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "torch_threads": torch_threads()},
            "versions": versions(), "recipe": toy.RECIPE, "training": run, "heldout": held,
        }, indent=2, default=str))
        print(f"results: {a.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
