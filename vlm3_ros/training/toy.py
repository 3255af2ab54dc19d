"""The TOY demo model: the tiny Qwen3-VL architecture fine-tuned HERE on the bundled TUM bag's
training split, so the demo, the sparse cloud and VO show parsed answers. It is NOT VLM3: a 2-layer,
64-wide model that learned the contract's answer formats from three frames; its numbers are
scored beside the best constant predictor to show how little it knows.

Reproducible by the package's own commands (:data:`RECIPE`):

    vlm3-ros export-sft <bundled bag> --out DATA                     # the default sampling
    vlm3-ros finetune DATA --base TOY_BASE --out OUT --method full --train-embeddings used ...

``TOY_BASE`` is the tiny checkpoint built with init std 0.02 (seed 0, deterministic). Only the
weights that training changes are kept in the repository (``data/toy_model/toy_weights.safetensors``:
the text layers and the embedding rows of the tokens the samples use, a few hundred kB), so setup
rebuilds the full checkpoint in seconds; ``vlm3-ros make-demo-model --retrain`` reruns the recipe.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vlm3_ros.readers.tum import BAG_PATHS

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "toy_model"
WEIGHTS = DATA_DIR / "toy_weights.safetensors"
LABEL = ("TOY demo model trained by vlm3_ros on 3 frames of the bundled TUM bag (tiny Qwen3-VL architecture, "
         "2 layers, 64 wide): NOT VLM3, its answers only follow the contract's formats")
MARKER = "vlm3_ros_toy_model.json"
BASE_INIT_STD = 0.02
EMBED_ROWS = "embed_rows"          # the stored embedding rows' token ids
EMBED_VALUES = "embed_values"

# what vlm3-ros export-sft and vlm3-ros finetune are run with (defaults elsewhere)
RECIPE: dict[str, Any] = {
    "bag": "tum_fr1_xyz_mini_mcap", "export": {"tasks": ["depth", "pose", "corr", "object"], "points_per_frame": 64,
                                               "corr_points": 16, "object_questions": 16, "seed": 0,
                                               "val_fraction": 0.3},
    "finetune": {"method": "full", "train_embeddings": "used", "max_steps": 1200, "learning_rate": 3e-3,
                 "rows": 32, "seed": 0, "eval_steps": 100, "save_steps": 100},
}


def toy_base(cache: Path) -> Path:
    from vlm3_ros.inference.assets import make_test_checkpoint

    return make_test_checkpoint(cache / "toy_base_std002", seed=0, init_std=BASE_INIT_STD)


def trained_tensors(model_dir: Path, base_dir: Path) -> dict[str, Any]:
    """What training changed: every non-embedding tensor that differs from the base, plus the
    embedding rows that differ (ids and values)."""
    import torch
    from safetensors.torch import load_file

    new, old = load_file(str(model_dir / "model.safetensors")), load_file(str(base_dir / "model.safetensors"))
    out: dict[str, Any] = {}
    for name, t in new.items():
        if "embed_tokens" in name:
            rows = torch.nonzero((t != old[name]).any(dim=1)).flatten()
            out[EMBED_ROWS] = rows.to(torch.int64)
            out[EMBED_VALUES] = t[rows].contiguous()
        elif not torch.equal(t, old[name]):
            out[name] = t.contiguous()
    return out


def write_weights(model_dir: Path, base_dir: Path, path: Path = WEIGHTS) -> int:
    """Keep the trained tensors of ``model_dir`` in ``path``; returns its size in bytes."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(trained_tensors(model_dir, base_dir), str(path), metadata={"what": LABEL})
    return path.stat().st_size


def build(out: Path, cache: Path, weights: Path = WEIGHTS, force: bool = False) -> Path:
    """The toy checkpoint in ``out``: the toy base with the stored trained tensors applied."""
    from safetensors.torch import load_file, save_file

    marker = out / MARKER
    if marker.is_file() and not force and json.loads(marker.read_text()).get("weights_bytes") == weights.stat().st_size:
        return out
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: the toy model's weights are missing (vlm3-ros make-demo-model --retrain)")
    base = toy_base(cache)
    out.mkdir(parents=True, exist_ok=True)
    state = load_file(str(base / "model.safetensors"))
    trained = load_file(str(weights))
    rows, values = trained.pop(EMBED_ROWS), trained.pop(EMBED_VALUES)
    for name, t in trained.items():
        if name not in state or state[name].shape != t.shape:
            raise ValueError(f"{weights}: tensor {name} does not fit the toy base (rebuild with --retrain)")
        state[name] = t
    emb = next(n for n in state if "embed_tokens" in n)
    state[emb] = state[emb].clone()
    state[emb][rows] = values
    for f in base.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "vlm3_ros_test_checkpoint.json"):
            shutil.copy2(f, out / f.name)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    marker.write_text(json.dumps({"what": LABEL, "trained": True, "not": "VLM3",
                                  "weights_bytes": weights.stat().st_size, "recipe": RECIPE}, indent=2))
    return out


def bag() -> Path:
    return BAG_PATHS["mcap"]
