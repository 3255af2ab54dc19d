"""The benchmark scripts (bench/): each imports what it shares from bench/bench_common the normal
way (no sys.path edits, no script imported by another) and answers --help with what it measures;
the shared results writer records the machine and the command; repeated runs quote the median run
with its spread; the compute floor's arithmetic (bench/engine_floor.py) counts the weights
transformers builds for the 4B's config."""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))
SHARED = sorted((BENCH / "bench_common").glob("*.py"))


def script_env() -> dict[str, str]:
    """The environment a script runs in: this one, with the checkout's sources first on
    PYTHONPATH (as bench/gpu_check.sh runs them), so the scripts import the vlm3_ros under test
    rather than an install built before the latest new module."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def bench_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/ importable in this test process, as it is for a script run as python bench/X.py."""
    monkeypatch.syspath_prepend(str(BENCH))


def test_no_bench_file_edits_the_import_path() -> None:
    """Scripts find bench_common as their own folder's package and vlm3_ros in the environment."""
    offenders = []
    for path in [*SCRIPTS, *SHARED]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"sys.path used in {offenders}: import bench_common / vlm3_ros the normal way"
    assert SHARED, "bench/bench_common/ holds the shared module"


def test_scripts_import_only_the_shared_module_from_bench() -> None:
    """No script is a library for another: what they share lives in bench_common."""
    scripts = {p.stem for p in SCRIPTS}
    for path in SCRIPTS:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not {n.split(".")[0] for n in names} & scripts, f"{path.name} imports another bench script"


def test_every_bench_script_imports_without_running() -> None:
    """Each script imports as a module from bench/ (as ``python bench/X.py`` finds bench_common)
    and does nothing until its main() is called."""
    names = [p.stem for p in SCRIPTS]
    code = ("import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
            "print('imported', len(sys.argv) - 1)")
    r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300,
                       cwd=BENCH, env=script_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"imported {len(names)}"


def test_every_bench_script_is_listed() -> None:
    assert {p.name for p in SCRIPTS} >= {"engine_bench.py", "engine_floor.py", "prefix_kernel_bench.py",
                                         "latency.py", "merge_bench.py", "load_test.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_has_help(script: Path, tmp_path: Path) -> None:
    """Run as ``python bench/X.py --help`` from another folder: bench/ comes onto the import path
    as the script's own folder, nothing else."""
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env=script_env())
    assert r.returncode == 0, r.stderr
    doc = ast.get_docstring(ast.parse(script.read_text()))
    assert doc and "usage" in r.stdout.lower()
    assert doc.splitlines()[0] in r.stdout, "--help should say what the script measures (its docstring)"


def test_gpu_check_has_help() -> None:
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--help"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0 and "Usage: bench/gpu_check.sh" in r.stdout, r.stderr


def test_compute_floor_counts_the_weights_transformers_builds(bench_path: None) -> None:
    """The floor's weight bytes (bf16, tied output layer) against the parameters of the text model
    transformers builds from the 4B's config (2 layers, on the meta device: no memory); they differ
    only by the norms, which the floor leaves out (a few KB)."""
    import engine_floor
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

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


def test_results_writer_records_machine_and_command(bench_path: None, tmp_path: Path) -> None:
    import torch
    import transformers
    from bench_common.results import ResultsWriter, command_line

    command = command_line("/anywhere/bench/some_bench.py", ["--points", "8,64", "--note", "two words"])
    assert command == "python bench/some_bench.py --points 8,64 --note 'two words'"
    writer = ResultsWriter(tmp_path / "out", "some_cpu", command, notes=["shared machine", ""])
    md = writer.write("Some title", {"meta": {"frames": 3}, "rows": [{"points": 8}]}, ["| a |", "|---|"])
    doc = json.loads((tmp_path / "out" / "some_cpu.json").read_text())
    assert doc["rows"] == [{"points": 8}]
    meta = doc["meta"]
    assert meta["frames"] == 3 and meta["command"] == command and meta["notes"] == ["shared machine"]
    rec = meta["machine"]
    assert rec["cores"] == os.cpu_count() and rec["cpu_model"]
    assert rec["torch"] in (torch.__version__, torch.__version__.split("+")[0])
    assert rec["transformers"] == transformers.__version__
    assert (rec["gpu"] is None) == (not torch.cuda.is_available())
    assert rec["date"].endswith("UTC")
    if (ROOT / ".git").exists():
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
        assert rec["commit"] == head
    page = (tmp_path / "out" / "some_cpu.md").read_text().splitlines()
    assert page == md and page[0] == "# Some title"
    text = "\n".join(page)
    assert f"Command: `{command}`" in text and "Note: shared machine" in text
    assert f"commit {rec['commit']}" in text and rec["cpu_model"] in text and page[-2:] == ["| a |", "|---|"]

    writer.write("Top level", {"results": [1]}, [], meta_key=None)
    top = json.loads((tmp_path / "out" / "some_cpu.json").read_text())
    assert top["results"] == [1] and top["command"] == command and top["machine"]["cores"] == os.cpu_count()


def test_spread_quotes_the_median_run(bench_path: None) -> None:
    from bench_common.repeats import median_run, spread

    s = spread([3.0, 1.0, 2.0])
    assert (s["min"], s["median"], s["max"], s["median_run"], s["runs"]) == (1.0, 2.0, 3.0, 3, 3)
    assert s["max_over_min"] == 3.0
    even = spread([4.0, 1.0, 3.0, 2.0])   # the lower middle run, never an average of two
    assert (even["median"], even["median_run"]) == (2.0, 4)
    quoted = median_run([{"t": 0.5, "run": 1}, {"t": 0.9, "run": 2}, {"t": 0.7, "run": 3}], "t")
    assert quoted["run"] == 3 and quoted["t_spread"]["values"] == [0.5, 0.9, 0.7]


def test_worker_result_read_from_its_own_process(bench_path: None) -> None:
    from bench_common.repeats import result_line, run_worker

    ok = run_worker(["-c", f"print('loading'); print({result_line({'frame_s': 0.25})!r})"])
    assert ok.result == {"frame_s": 0.25} and ok.returncode == 0
    bad = run_worker(["-c", f"print({result_line({'frame_s': 1.0})!r}); raise SystemExit(3)"])
    assert bad.result is None and bad.returncode == 3 and "exit 3" in bad.failure()


def _engine_run(mode: str, points: int, frame_s: float, run: int) -> dict[str, Any]:
    """A worker's result in engine_bench's format (values chosen to tell the runs apart)."""
    return {"mode": mode, "points": points, "frame_s": frame_s, "frames": 3, "points_per_s": points / frame_s,
            "question_prefill_ms": None if mode == "naive" else 10.0 * run, "answer_step_ms": None if mode == "naive"
            else 1.0 * run, "attention_kv_ms": None, "peak_rss_mib": 700.0 + run, "peak_gpu_mib": None,
            "profile": None, "run": run}


def test_engine_bench_results_quote_the_median_run_and_its_spread(bench_path: None, tmp_path: Path) -> None:
    import engine_bench
    from bench_common.results import ResultsWriter

    a = engine_bench.parser().parse_args(["--points", "8", "--modes", "engine,naive", "--runs", "3",
                                          "--out", str(tmp_path)])
    assert isinstance(a, argparse.Namespace) and engine_bench.results_name(a) == "engine_tiny_cpu"
    results = {("engine", 8): [_engine_run("engine", 8, s, i) for i, s in enumerate((0.30, 0.50, 0.40), 1)],
               ("naive", 8): [_engine_run("naive", 8, s, i) for i, s in enumerate((8.0, 6.0, 7.0), 1)]}
    md = engine_bench.write_results(a, ResultsWriter(tmp_path, "engine_tiny_cpu", "python bench/engine_bench.py"),
                                    results)
    doc = json.loads((tmp_path / "engine_tiny_cpu.json").read_text())
    rows = {r["mode"]: r for r in doc["rows"]}
    assert rows["engine"]["run"] == 3 and rows["engine"]["frame_s"] == 0.40      # the median run, whole
    assert rows["engine"]["answer_step_ms"] == 3.0
    assert rows["engine"]["frame_s_spread"]["min"] == 0.30 and rows["engine"]["frame_s_spread"]["max"] == 0.50
    assert rows["naive"]["run"] == 3 and rows["naive"]["frame_s"] == 7.0
    assert len(doc["runs"]) == 6 and doc["meta"]["runs"] == 3
    text = "\n".join(md)
    assert md[0] == "# engine vs naive (tiny, cpu, 25 answer tokens, median of 3 frames, median of 3 runs)"
    assert "| 8 | 400.0 | 7000.0 | 17.5x |" in text                    # median runs side by side
    assert "| 8 | engine | 3 | 300.0 | 400.0 | 500.0 | 1.67 | run 3 | 300.0, 500.0, 400.0 |" in text
    assert "median run" in text
