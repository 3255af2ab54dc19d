"""The benchmark scripts (bench/) answer --help with what they measure, and the compute floor's
arithmetic (bench/engine_floor.py) counts the weights transformers builds for the 4B's config."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(ROOT.glob("bench/*.py"))


def test_every_bench_script_is_listed() -> None:
    assert {p.name for p in SCRIPTS} >= {"engine_bench.py", "engine_floor.py", "prefix_kernel_bench.py",
                                         "latency.py", "merge_bench.py", "load_test.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_has_help(script: Path) -> None:
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    doc = ast.get_docstring(ast.parse(script.read_text()))
    assert doc and "usage" in r.stdout.lower()
    assert doc.splitlines()[0] in r.stdout, "--help should say what the script measures (its docstring)"


def test_gpu_check_has_help() -> None:
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--help"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0 and "Usage: bench/gpu_check.sh" in r.stdout, r.stderr


def test_compute_floor_counts_the_weights_transformers_builds() -> None:
    """The floor's weight bytes (bf16, tied output layer) against the parameters of the text model
    transformers builds from the 4B's config (2 layers, on the meta device: no memory); they differ
    only by the norms, which the floor leaves out (a few KB)."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import engine_floor
    finally:
        sys.path.remove(str(ROOT / "bench"))
    conf = json.loads(engine_floor.CONFIG.read_text())
    conf["text_config"]["num_hidden_layers"] = 2
    conf["vision_config"].update(depth=1, deepstack_visual_indexes=[0])
    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration(
            Qwen3VLConfig(**{k: v for k, v in conf.items() if k not in ("architectures", "transformers_version")}))
    built = sum(p.numel() for p in model.model.language_model.parameters())
    counted = engine_floor.floor(1, 0, 10, 100, 1, conf)["weights_gb"] * 1e9 / 2
    assert counted == pytest.approx(built, rel=1e-4)
    assert counted < built   # the norms' weights are all that is left out
