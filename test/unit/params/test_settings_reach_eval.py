"""The evaluation scores what the robot runs: a non-default value of every setting that shapes
what the model sees (unification, interpolation, prompts file, token limits, depth type, point
limit), given as the node's params file plus NAME:=VALUE overrides, reaches the questions that
`vlm3-ros eval` sends to the backend, through the same mapping the node configures itself with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlm3_ros.contract.question import Question
from vlm3_ros.geometry.unify import plan, render
from vlm3_ros.inference.ground_truth.backend import GroundTruthBackend
from vlm3_ros.params.config import build_config
from vlm3_ros.params.files import load_values
from vlm3_ros.params.mapping import pipeline_settings
from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tasks.task_registry import TASKS
from vlm3_ros.tools.eval_command import main

PROMPT = "Depth at ({nx}, {ny}), in metres? Answer in <answer> </answer> tags."


def _files(tmp_path: Path) -> tuple[Path, Path]:
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(f'depth: "{PROMPT}"\n')
    params = tmp_path / "robot.yaml"
    params.write_text("vlm3_perception:\n  ros__parameters:\n"
                      f"    prompts_file: {prompts}\n    rectify: false\n    equalize_focal: true\n"
                      "    max_long_edge: 1000\n    max_new_tokens:\n      depth: 77\n")
    return params, prompts


OVERRIDES = ["interpolation:=nearest", "model.depth_type:=z_depth", "max_points_per_request:=6"]


def test_the_mapping_carries_every_setting(tmp_path: Path) -> None:
    params, _ = _files(tmp_path)
    cfg = build_config({**load_values(params, OVERRIDES), "backend": "remote", "sparse_depth.rate_hz": 0.0})
    s = pipeline_settings(cfg)
    for name in TASKS:
        u = s.unify[name]
        assert (u.rectify, u.equalize_focal, u.max_long_edge, u.interpolation) == (False, True, 1000, "nearest")
        assert (u.target_focal, u.long_edge) == (TASKS[name].unify.target_focal, TASKS[name].unify.long_edge)
    assert s.prompts.depth == PROMPT and s.max_new_tokens["depth"] == 77 and s.max_new_tokens["pose"] == 96
    assert s.model_depth_type == "z_depth" and s.max_points == 6


def test_non_default_settings_reach_the_evaluated_questions(tmp_path: Path, monkeypatch, bag_camera) -> None:
    asked: list[Question] = []
    answer = GroundTruthBackend.answer

    def spy(self, questions):  # records what the model would be shown, then answers as the double does
        asked.extend(questions)
        return answer(self, questions)

    monkeypatch.setattr(GroundTruthBackend, "answer", spy)
    params, _ = _files(tmp_path)
    out = tmp_path / "eval"
    assert main([str(BAG_PATHS["mcap"]), *OVERRIDES, "--params-file", str(params), "--backend", "ground_truth",
                 "--tasks", "depth", "--max-frames", "2", "--points-per-frame", "6", "--out", str(out),
                 "--no-progress"]) == 0
    assert len(asked) == 24  # 12 evaluated, and the same 12 asked of the ideal model for the ceiling
    rgb = {stamp: image for stamp, _, image, _ in bag_camera}
    expected = TASKS["depth"].unify
    for q in asked:
        assert q.text.startswith("Depth at (") and q.max_new_tokens == 77
        assert q.context is not None and q.context.model_depth_type == "z_depth"
        view = q.context.views[0]
        want = plan(view.camera, type(expected)(target_focal=expected.target_focal, rectify=False,
                                                equalize_focal=True, max_long_edge=1000))
        assert not view.rectified and view.clamped and max(view.width, view.height) <= 1000
        assert (view.width, view.height, view.sx, view.sy) == (want.width, want.height, want.sx, want.sy)
        assert view.sx != view.sy  # equalize_focal: fx != fy on this camera
        assert np.array_equal(q.images[0], render(rgb[q.context.stamps[0]], view, "nearest"))
    # the node's point limit is the evaluation's too: more points than the robot accepts is refused
    assert main([str(BAG_PATHS["mcap"]), *OVERRIDES, "--backend", "ground_truth", "--points-per-frame", "7",
                 "--out", str(out), "--no-progress"]) == 2
