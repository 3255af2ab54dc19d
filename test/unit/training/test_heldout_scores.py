"""Held-out scoring without a model: replies given as text, scored against the samples' truth,
and the best-constant baselines checked against a brute-force search."""

from __future__ import annotations

import numpy as np
import pytest

from vlm3_ros.contract import answers
from vlm3_ros.eval.metrics import quantitative_success
from vlm3_ros.training.heldout import best_constant_success, score
from vlm3_ros.training.sft_samples import Sample


def test_best_constant_success_is_the_brute_force_optimum() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        gt = rng.uniform(0.05, 3.0, size=int(rng.integers(1, 12)))
        rate, c = best_constant_success(gt)
        grid = np.linspace(0.01, 4.0, 40_000)
        brute = max(np.mean([quantitative_success(t, g) for t in gt]) for g in grid)
        assert rate == pytest.approx(brute) and rate == pytest.approx(np.mean([quantitative_success(t, c) for t in gt]))


def test_object_replies_are_scored_by_the_band_with_parse_failures_counted() -> None:
    truths = [0.5, 1.0, 2.0, 4.0]
    samples = [Sample("object", "val", ("a.png",), "How tall is bounding box region (1, 2, 3, 4)?", "",
                      truth={"kind": "height_data", "value_m": t}) for t in truths]
    replies = [answers.format_object_quantity("height_data", 0.55, "it"),   # inside the band
               "it is 70 centimeters tall.",                                  # 0.7 m: outside (0.75-1.25 m)
               "I cannot tell.",                                              # no quantity: a parse failure
               answers.format_object_quantity("height_data", 4.9, "it")]     # inside
    s = score(samples, replies)["object"]
    assert s["n"] == 4 and s["parse_rate"] == 0.75 and s["success"] == 0.5
    assert s["best_constant_success"] == 0.25        # no constant is within the band of two of these truths
