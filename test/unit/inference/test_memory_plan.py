"""The memory plan (vlm3_ros/inference/memory_plan.py): its arithmetic against the true 4B's
parameter count and the H200's measured peaks, and configure's refusal with its message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm3_ros.contract.question import BackendError
from vlm3_ros.inference import memory_plan
from vlm3_ros.inference.memory_plan import BUNDLED_4B, MIB, ModelShape, Workload, check_fits, plan_backend, weight_bytes
from vlm3_ros.params import mapping
from vlm3_ros.serving.health import HealthLevel, models_health
from vlm3_ros.serving.log import Log
from vlm3_ros.serving.model_host import ModelHost

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "bench" / "results"
SHAPE_4B = ModelShape.from_config(json.loads(BUNDLED_4B.read_text()))


def test_4b_weights_are_the_architectures_parameters_exactly() -> None:
    torch = pytest.importorskip("torch")
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    conf = json.loads(BUNDLED_4B.read_text())
    config = Qwen3VLConfig(**{k: v for k, v in conf.items() if k not in ("architectures", "transformers_version")})
    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration(config)
    params = sum(p.numel() for p in model.parameters())
    assert weight_bytes(SHAPE_4B, "bfloat16", 2) == 2 * params
    assert weight_bytes(SHAPE_4B, "float32", 4) == 4 * params
    linear = sum(m.weight.numel() for n, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head"))
    assert sum(c * o * i for c, o, i in SHAPE_4B.linear_layers()) == linear
    # quantised: the linear layers shrink, the rest (embedding, norms, biases) stays bf16
    assert weight_bytes(SHAPE_4B, "int8", 2) < 0.6 * weight_bytes(SHAPE_4B, "bfloat16", 2)
    assert weight_bytes(SHAPE_4B, "int4", 2) < 0.4 * weight_bytes(SHAPE_4B, "bfloat16", 2)


def measured_peak(name: str, points: int) -> float:
    rows = json.loads((RESULTS / name).read_text())["rows"]
    return next(r["peak_gpu_mib"] for r in rows if r["mode"] == "engine" and r["points"] == points)


def bench_workload(graphs: int) -> Workload:
    """What bench/engine_bench.py ran on the H200 (--batch-size 256, 25 answer tokens, no prefix
    cache): one bag frame's 1136 image tokens, the depth question's own 74 tokens after the 12
    shared leading ones (bench/results/engine_floor_4b_cuda.md)."""
    return Workload(rows=256, image_tokens=1136, question_tokens=74, answer_tokens=25, prefix_cache_mib=0.0,
                    graph_slots=graphs)


def test_plan_matches_the_h200_peaks_at_256_points() -> None:
    per_batch = measured_peak("engine_4b_cuda_slots0.json", 256)      # graph_slots 0: 14393 MiB
    kept = measured_peak("engine_4b_cuda.json", 256)                    # graph_slots 2: 18135 MiB
    # the bench's 256-point frames are one batch shape, so of its 2 slots one graph was kept
    plan0 = plan_backend(SHAPE_4B, "bfloat16", 2, bench_workload(0)).total / MIB
    plan1 = plan_backend(SHAPE_4B, "bfloat16", 2, bench_workload(1)).total / MIB
    assert abs(plan0 - per_batch) / per_batch < 0.05, (plan0, per_batch)
    assert abs(plan1 - kept) / kept < 0.05, (plan1, kept)
    # the kept graph's share: its batch's own keys/values and its private prefix copy
    assert abs((plan1 - plan0) - (kept - per_batch)) / (kept - per_batch) < 0.05


def test_all_tasks_at_once_add_resident_parts_and_the_largest_job() -> None:
    work = {"depth": Workload(rows=64), "pose": Workload(images=2, rows=4)}
    plan = memory_plan.plan_tasks({"a": SHAPE_4B, "b": SHAPE_4B}, {"depth": "a", "pose": "b"}, "int8", 2, work,
                                  "cuda")
    depth, pose = plan.backends
    assert plan.total == depth.resident + pose.resident + max(depth.transient, pose.transient)
    shared = memory_plan.plan_tasks({"a": SHAPE_4B}, {"depth": "a", "pose": "a"}, "int8", 2, work, "cuda")
    assert len(shared.backends) == 1 and shared.backends[0].tasks == ("depth", "pose")


def test_a_plan_over_the_free_memory_is_refused_with_the_settings_that_fit() -> None:
    plan = memory_plan.plan_tasks({"a": SHAPE_4B}, {"depth": "a"}, "bfloat16", 2,
                                  {"depth": Workload(rows=32, graph_slots=2)}, "cuda:0")
    check_fits(plan, 64 * 2**30)                     # an H100's 64 GiB: fits, no error
    with pytest.raises(BackendError) as e:
        check_fits(plan, 12 * 2**30)                 # an RTX 3060
    msg = str(e.value)
    assert f"need {plan.total / MIB:.0f} MiB on cuda:0" in msg and "12288 MiB free" in msg
    assert "weights 8464" in msg                                     # the parts, per backend
    fitting = [k for k in plan.knobs(12 * 2**30) if k.endswith(": fits)")]
    assert any(k.startswith("model.quantization: int8") for k in fitting), plan.knobs(12 * 2**30)
    assert not plan.fits(12 * 2**30) and plan.with_backends(precision="int8").fits(12 * 2**30)
    assert "model.graph_slots: 0" in msg and "model.prefix_cache_mb: 128" in msg


def test_configure_refuses_a_plan_the_device_cannot_hold(tiny_checkpoint: Path, monkeypatch) -> None:
    """The node's configure path (ModelHost.load -> mapping.open_backends): the refusal comes before
    any model loads and /diagnostics reports it as ERROR. The device's free memory is a TEST
    DOUBLE (a CPU whose free memory is 1 MiB)."""
    settings = mapping.settings_from({"backend": "transformers", "enabled_tasks": ["depth"],
                                      "model.depth_path": str(tiny_checkpoint), "model.device": "cpu",
                                      "vo.enabled": False})
    loaded = []
    monkeypatch.setattr(mapping, "free_bytes", lambda device: (MIB, "test double"))
    monkeypatch.setattr(mapping, "open_registered", lambda kind, configs: loaded.append(kind) or {})
    host = ModelHost(Log())
    host.open_backends = lambda: mapping.open_backends(settings)
    assert not host.load()
    assert not loaded
    assert host.config_error.startswith("cannot load the models: the models need")
    assert "To fit:" in host.config_error
    health = models_health(host)
    assert health.level == HealthLevel.ERROR and "MiB" in health.message
    # the same settings with the check off reach the loader
    off = mapping.settings_from({**dict(settings.parameters), "model.memory_check": False})
    host.open_backends = lambda: mapping.open_backends(off)
    assert host.load() and loaded == ["transformers"]


def test_plan_command_prints_the_plan_and_says_what_fits(tmp_path: Path, capsys) -> None:
    from vlm3_ros.tools import plan_command

    params = tmp_path / "robot.yaml"
    params.write_text("/**/vlm3_perception:\n  ros__parameters:\n    enabled_tasks: [depth, pose]\n")
    assert plan_command.main(["--params-file", str(params), "--device-memory-gib", "16"]) == 1
    out = capsys.readouterr().out
    assert "| depth | bfloat16 | 8464 |" in out and "| pose | bfloat16 | 8464 |" in out
    assert "does NOT fit" in out and "model.quantization: int8" in out
    assert plan_command.main(["--params-file", str(params), "--device-memory-gib", "16", "--precisions",
                              "model.quantization:=int4"]) == 0
    out = capsys.readouterr().out
    assert "| depth | int4 |" in out and "fits:" in out and "| bfloat16 |" in out
