"""The TOY demo model (tiny architecture fine-tuned here on the bundled bag; NOT VLM3): rebuilt
from the repository's trained weights, it answers held-out frames in the contract's formats, and
its scores are the ones in the committed results file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm3_ros.tools import demo_model
from vlm3_ros.training import toy

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "toy_demo_model_cpu.json"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "toy_model"
    assert demo_model.main([str(out)]) == 0
    return out


def test_toy_model_answers_held_out_frames_in_the_contracts_formats(built) -> None:
    held = json.loads((built / "heldout.json").read_text())
    scores = held["scores"]
    assert held["split"] == "val" and held["samples"] > 100
    assert scores["depth"]["parse_rate"] >= 0.95
    assert scores["pose"]["parse_rate"] >= 0.95
    assert scores["object"]["parse_rate"] >= 0.9     # region questions from the bag's depth (export-sft)
    assert 0.0 <= scores["object"]["success"] <= 1.0 and 0.0 < scores["object"]["best_constant_success"] <= 1.0
    # reported next to the best constant predictor on the same points
    assert 0.0 <= scores["depth"]["delta1"] <= 1.0
    assert 0.0 < scores["depth"]["best_constant_delta1"] <= 1.0
    marker = json.loads((built / toy.MARKER).read_text())
    assert marker["not"] == "VLM3" and "TOY" in marker["what"]
    assert not (built / "vlm3_ros_test_checkpoint.json").exists()


def test_scores_match_the_committed_results_file(built) -> None:
    committed = json.loads(RESULTS.read_text())["heldout"]["scores"]
    now = json.loads((built / "heldout.json").read_text())["scores"]
    for task in ("depth", "pose", "corr", "object"):
        assert now[task]["n"] == committed[task]["n"]
        assert now[task]["parse_rate"] == pytest.approx(committed[task]["parse_rate"], abs=0.03)
    assert now["depth"]["delta1"] == pytest.approx(committed["depth"]["delta1"], abs=0.03)
    assert now["depth"]["best_constant_delta1"] == committed["depth"]["best_constant_delta1"]
    assert now["object"]["success"] == pytest.approx(committed["object"]["success"], abs=0.07)
    assert now["object"]["best_constant_success"] == committed["object"]["best_constant_success"]


def test_stored_weights_are_small_and_rebuild_is_idempotent(built, tmp_path) -> None:
    assert toy.WEIGHTS.stat().st_size < 2 * 2**20
    stamp = (built / "model.safetensors").stat().st_mtime_ns
    toy.build(built, demo_model.ros_env.cache_dir())
    assert (built / "model.safetensors").stat().st_mtime_ns == stamp      # up to date: not rewritten
    with pytest.raises(FileNotFoundError, match="--retrain"):
        toy.build(tmp_path / "x", demo_model.ros_env.cache_dir(), tmp_path / "missing.safetensors")


class _NoAnswerEnd:
    """The same backend with every question's answer-end rule removed (run to <|im_end|>)."""

    def __init__(self, backend) -> None:
        self.backend, self.name = backend, "no-answer-end"

    def answer(self, questions):
        import dataclasses

        return self.backend.answer([dataclasses.replace(q, answer_end="") for q in questions])

    def close(self) -> None:
        pass


def test_stopping_at_the_answer_end_saves_steps_and_changes_no_answer(built) -> None:
    """The toy model writes complete answers, so it shows what the untrained tiny checkpoint cannot:
    generation stops after '</answer>' / ')' in engine and naive mode, with the same replies."""
    import numpy as np

    from vlm3_ros.geometry.camera import CameraModel
    from vlm3_ros.geometry.frame import Frame
    from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
    from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend
    from vlm3_ros.params.config import build_config
    from vlm3_ros.params.mapping import pipeline_settings
    from vlm3_ros.readers.tum import TumSequence
    from vlm3_ros.tasks.pipeline import Pipeline

    seq = TumSequence()
    cam = CameraModel.from_camera_info(seq.camera_info)
    f_a, f_b = (Frame(f.rgb(), cam, int(f.rgb_stamp * 1e9), "cam") for f in seq.frames[-2:])
    settings = pipeline_settings(build_config({}, require_backend=False))
    px = np.array([[100.0, 100.0], [320.0, 240.0], [500.0, 400.0], [50.0, 420.0]])
    replies, steps = {}, {}
    for mode in ("engine", "naive"):
        backend = TransformersBackend(TransformersConfig(str(built), mode=mode, prefix_cache_mb=0))
        try:
            for stop in (True, False):
                b = backend if stop else _NoAnswerEnd(backend)
                pipe = Pipeline({"depth": b, "corr": b}, settings)
                before = backend.stats["decode_steps"]
                d = pipe.depth(f_a, px, "z_depth")
                c = pipe.corr(f_a, f_b, px[:2])
                replies[mode, stop] = list(d.raw) + list(c.raw)
                steps[mode, stop] = backend.stats["decode_steps"] - before
        finally:
            backend.close()
    assert any("</answer>" in r for r in replies["engine", True]), replies
    assert replies["engine", True] == replies["engine", False] == replies["naive", True] == replies["naive", False]
    assert steps["engine", True] < steps["engine", False]
    assert steps["naive", True] < steps["naive", False]
