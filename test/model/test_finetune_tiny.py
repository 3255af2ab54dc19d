"""Fine-tuning on the real Qwen3-VL classes (tiny architecture, CPU): the frame-group loss is the
plain per-question loss, the Trainer run lowers the held-out loss, resumes, and writes a
checkpoint the node's backend loads unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vlm3_ros.eval.dataset import EvalOptions
from vlm3_ros.params.config import build_config
from vlm3_ros.params.mapping import pipeline_settings
from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools import finetune_command as finetune_cli
from vlm3_ros.training.batches import IGNORE, BatchBuilder, frame_groups, full_sequences
from vlm3_ros.training.export import ExportOptions, export_bags
from vlm3_ros.training.finetune import MARKER, FinetuneConfig, finetune, unwrap_one
from vlm3_ros.training.objective import FrozenVisionFeatures, answer_loss, enable_shared_prefix, plain_loss
from vlm3_ros.training.sft_samples import read_jsonl


@pytest.fixture(scope="module")
def sft(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft_small")
    export_bags([BAG_PATHS["mcap"]], out, pipeline_settings(build_config({}, require_backend=False)),
                ExportOptions(EvalOptions(points_per_frame=8, corr_points=4, seed=1), val_fraction=0.3),
                show_progress=False)
    return out


def test_frame_group_loss_and_gradient_equal_the_plain_forward(sft, tiny_checkpoint) -> None:
    from transformers import AutoModelForImageTextToText

    from vlm3_ros.inference.transformers_engine.model_loading import load_processor

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_checkpoint), dtype=torch.float32)
    enable_shared_prefix(model)
    builder = BatchBuilder(load_processor(str(tiny_checkpoint)))
    groups = frame_groups(read_jsonl(sft / "train.jsonl"), sft, rows=3)
    for task in ("depth", "pose"):
        g = next(x for x in groups if x.samples[0].task == task and len(x.samples) > 1)
        batch = builder(g)
        assert batch["input_ids"].shape[0] == len(g.samples)
        assert (batch["labels"] != IGNORE).sum() > 0
        ours = answer_loss(model, batch, FrozenVisionFeatures())
        ours.backward()
        grad_ours = model.model.language_model.layers[0].self_attn.k_proj.weight.grad.clone()
        model.zero_grad()
        plain = plain_loss(model, full_sequences(builder, g))
        plain.backward()
        grad_plain = model.model.language_model.layers[0].self_attn.k_proj.weight.grad.clone()
        model.zero_grad()
        assert float(ours) == pytest.approx(float(plain), rel=1e-5)
        torch.testing.assert_close(grad_ours, grad_plain, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="per_device_train_batch_size=1"):
        unwrap_one([{}, {}])


def test_lora_run_lowers_val_loss_resumes_and_loads_in_the_node_backend(sft, tiny_checkpoint, tmp_path) -> None:
    from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
    from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend
    from vlm3_ros.training.heldout import ask

    out = tmp_path / "ft"
    cfg = FinetuneConfig(data=str(sft), base=str(tiny_checkpoint), out=str(out), method="lora", max_steps=6,
                         learning_rate=5e-3, rows=8, eval_steps=6, save_steps=3, label="test run")
    rec = finetune(cfg, show_progress=False)
    assert rec["steps"] == 6
    assert rec["val_loss_after"] < rec["val_loss_before"]
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "loss.png").stat().st_size > 1000
    marker = json.loads((out / MARKER).read_text())
    assert marker["what"] == "test run" and "merged" in marker["lora"]
    assert not (out / "vlm3_ros_test_checkpoint.json").exists()
    # resume: a longer run continues from the saved step 6 instead of starting over
    rec2 = finetune(FinetuneConfig(**{**cfg.__dict__, "max_steps": 9, "resume": True}), show_progress=False)
    assert rec2["steps"] == 9 and rec2["val_loss_before"] is None
    assert rec2["resumed_from"].endswith("checkpoint-6")
    # the restored history carries the first run's step-6 evaluation, the new run adds step 9's
    evals = [h["step"] for h in rec2["log_history"] if "eval_loss" in h]
    assert 6 in evals and evals[-1] == 9
    # the node's backend loads the merged checkpoint unchanged and answers
    backend = TransformersBackend(TransformersConfig(str(out), batch_size=4))
    try:
        samples = read_jsonl(sft / "val.jsonl")[:2]
        replies = ask(backend, samples, sft)
        assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    finally:
        backend.close()


def test_finetune_cli_refuses_what_it_cannot_use(tmp_path, tiny_checkpoint, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        finetune_cli.main(["--help"])
    assert e.value.code == 0
    assert "merged" in capsys.readouterr().out
    assert finetune_cli.main([str(tmp_path), "--base", str(tiny_checkpoint), "--out", str(tmp_path / "o")]) == 2
    assert "export-sft" in capsys.readouterr().err
    assert finetune_cli.main([str(tmp_path), "--base", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "config.json" in capsys.readouterr().err
