"""Region questions sampled on a bag (eval --tasks ...,object): boxes over valid depth, each of
SpatialRGPT-Bench's quantitative kinds, truth measured by geometry.regions, the wording one the
ground-truth double recognises, and the other tasks' samples left as they were."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlm3_ros.contract import answers
from vlm3_ros.eval import dataset as D
from vlm3_ros.geometry import regions
from vlm3_ros.inference.ground_truth.answerer import object_kind
from vlm3_ros.readers.bag_contents import TopicRequest, resolve_topics
from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools.eval_command import main


def dataset(**kw: object) -> D.Dataset:
    opts = D.EvalOptions(**kw)  # type: ignore[arg-type]
    seq = D.load_sequence(BAG_PATHS["mcap"], resolve_topics(BAG_PATHS["mcap"], TopicRequest()), opts)
    return D.from_sequence(seq, opts)


@pytest.fixture(scope="module")
def with_object() -> D.Dataset:
    return dataset(tasks=("depth", "pose", "corr", "object"), object_questions=6, seed=2)


def test_every_wording_names_its_kind_for_the_ground_truth_double() -> None:
    assert set(D.OBJECT_QUESTIONS) == set(regions.KINDS)
    for kind, texts in D.OBJECT_QUESTIONS.items():
        for t in texts:
            assert object_kind(t) == kind, t
            assert ("Region [1]" in t) == (kind in regions.TWO_REGIONS)


def test_sampled_boxes_lie_over_depth_and_their_truth_is_the_regions_measure(with_object) -> None:
    ds = with_object
    assert len(ds.object) == 5 * 6                        # every question placed on this bag's frames
    assert {q.category for q in ds.object} == set(regions.KINDS)
    depth = ds.depth_images
    for q in ds.object:
        d = depth[q.frame.stamp_ns]
        h, w = d.shape
        assert q.qa_type == "quantitative" and q.question in D.OBJECT_QUESTIONS[q.category]
        assert len(q.boxes) == (2 if q.category in regions.TWO_REGIONS else 1)
        for b in q.boxes:
            assert 16 <= b[0] < b[2] <= w - 16 and 16 <= b[1] < b[3] <= h - 16
            assert regions.depth_coverage(b, d) >= D.BOX_MIN_COVERAGE
        pts = [regions.region_points(b, d, q.frame.camera) for b in q.boxes]
        assert q.truth_m == pytest.approx(regions.measure(q.category, pts))
        assert answers.parse_object(q.answer).value.quantity_m == pytest.approx(q.truth_m, abs=0.0051)
        if len(q.boxes) == 2:
            assert D._iou(q.boxes[0], q.boxes[1]) <= D.BOX_MAX_IOU


def test_sampling_is_seeded_and_leaves_the_other_tasks_samples_unchanged(with_object) -> None:
    again = dataset(tasks=("depth", "pose", "corr", "object"), object_questions=6, seed=2)
    assert [q.question for q in again.object] == [q.question for q in with_object.object]
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(again.object, with_object.object, strict=True))
    other = dataset(tasks=("depth", "pose", "corr", "object"), object_questions=6, seed=3)
    assert not all(np.array_equal(a.boxes, b.boxes) for a, b in zip(other.object, with_object.object, strict=True))
    without = dataset(seed=2)
    assert not without.object
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(without.depth, with_object.depth, strict=True))
    assert all(np.array_equal(a.pixels_a, b.pixels_a) for a, b in zip(without.corr, with_object.corr, strict=True))
    assert len(without.pose) == len(with_object.pose)


def test_a_frame_without_room_for_a_box_gets_no_question() -> None:
    rng = np.random.default_rng(0)
    holes = np.zeros((120, 160))
    holes[::2, ::2] = 1.5                                   # a quarter of the pixels have depth
    assert D.sample_box(holes, 4, rng) is None


def test_eval_scores_region_questions_on_a_bag_with_the_ground_truth_double(tmp_path: Path) -> None:
    out = tmp_path / "obj"
    assert main([str(BAG_PATHS["mcap"]), "--backend", "ground_truth", "--tasks", "object", "--object-questions", "5",
                 "--out", str(out), "--no-progress"]) == 0
    o = json.loads((out / "report.json").read_text())["sequences"][0]["object"]
    assert o["n"] == 25 and o["unparsed"] == 0 and o["quantitative"] == 25
    # the double reads the boxes back from the prompt's integers: the same measure, within the band
    for name in ("direct_distance", "horizontal_distance", "vertical_distance", "width", "height"):
        assert o[f"Quan_{name}_acc"] == 100.0
    assert o["Quan_overall_acc"] == 100.0
    md = (out / "report.md").read_text()
    assert "| direct distance | horizontal distance | vertical distance | width | height |" in md
    assert "| tum_fr1_xyz_mini_mcap | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in md
    assert (out / "object_scatter.png").stat().st_size > 10_000       # answers vs truth with the band
