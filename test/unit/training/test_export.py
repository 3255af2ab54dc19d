"""export-sft on the bundled bag: the evaluation's queries and ground truth, one copy; answers in
the contract's strings that the node's parsers read back; a split by time; images written once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from vlm3_ros.contract import answers
from vlm3_ros.eval.dataset import EvalOptions, from_sequence, load_sequence
from vlm3_ros.params.config import build_config
from vlm3_ros.params.mapping import pipeline_settings
from vlm3_ros.readers.bag_contents import TopicRequest, resolve_topics
from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tasks.pose_task import PARSERS
from vlm3_ros.tools import export_sft
from vlm3_ros.training.export import ExportOptions, export_bags, time_cut
from vlm3_ros.training.sft_samples import Sample, SampleError, read_jsonl

SAMPLING = EvalOptions(tasks=("depth", "pose", "corr", "object"), points_per_frame=16, corr_points=6,
                       object_questions=4, seed=3)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sft")
    settings = pipeline_settings(build_config({}, require_backend=False))
    summary = export_bags([BAG_PATHS["mcap"]], out, settings, ExportOptions(SAMPLING, val_fraction=0.3),
                          show_progress=False)
    return out, summary


def eval_dataset(depth_type: str):
    opts = EvalOptions(**{**SAMPLING.__dict__, "depth_type": depth_type})
    seq = load_sequence(BAG_PATHS["mcap"], resolve_topics(BAG_PATHS["mcap"], TopicRequest()), opts)
    return seq, from_sequence(seq, opts)


def test_depth_samples_are_the_evaluations_points_and_truth_exactly(exported) -> None:
    out, _ = exported
    samples = [s for s in read_jsonl(out / "train.jsonl") + read_jsonl(out / "val.jsonl") if s.task == "depth"]
    model_depth_type = build_config({}, require_backend=False)["model.depth_type"]
    _, ds = eval_dataset(model_depth_type)
    truth = {(q.frame.stamp_ns, float(u), float(v)): float(g)
             for q in ds.depth for (u, v), g in zip(q.pixels, q.gt, strict=True)}
    assert len(samples) == len(truth) == 5 * 16
    for s in samples:
        key = (s.stamps[0], *s.truth["pixel"])
        assert s.truth["depth_m"] == truth[key]                   # bit-identical ground truth
        assert s.truth["depth_type"] == model_depth_type
        parsed = answers.parse_depth(s.answer)
        assert parsed.ok and abs(parsed.value - truth[key]) <= 0.005


def test_pose_and_corr_samples_follow_the_evaluations_pairs(exported) -> None:
    out, summary = exported
    samples = read_jsonl(out / "train.jsonl") + read_jsonl(out / "val.jsonl")
    _, ds = eval_dataset("z_depth")
    pairs = {(q.frame_a.stamp_ns, q.frame_b.stamp_ns): q.T_a_b for q in ds.pose}
    pose = [s for s in samples if s.task == "pose"]
    assert {s.truth["question"] for s in pose} == set(answers.POSE_KEYS)
    for s in pose:
        T = pairs[tuple(s.stamps)]
        np.testing.assert_allclose(np.asarray(s.truth["T_a_b"]), T, atol=1e-8)
        assert PARSERS[s.truth["question"]](s.answer).ok
        assert s.answer == answers.format_pose_answer(s.truth["question"], np.asarray(s.truth["T_a_b"]))
    corr = [s for s in samples if s.task == "corr"]
    truth_b = {(q.frame_a.stamp_ns, q.frame_b.stamp_ns, float(a[0]), float(a[1])): b
               for q in ds.corr for a, b in zip(q.pixels_a, q.pixels_b, strict=True)}
    assert corr
    for s in corr:
        b = truth_b[(*s.stamps, *s.truth["pixel_a"])]
        assert s.truth["pixel_b"] == [float(b[0]), float(b[1])]
        assert answers.parse_point(s.answer).ok
    # pairs across the cut are dropped, none is kept twice
    kept = {tuple(s.stamps) for s in pose}
    assert len(kept) * 4 == len(pose)
    assert summary.dropped.get("pose: frame pair straddles the train/val cut", 0) == len(pairs) - len(kept)


def test_object_samples_answer_the_evaluations_region_questions_naming_the_prompts_boxes(exported) -> None:
    out, summary = exported
    samples = [s for s in read_jsonl(out / "train.jsonl") + read_jsonl(out / "val.jsonl") if s.task == "object"]
    _, ds = eval_dataset("z_depth")
    truth = {(q.frame.stamp_ns, q.question, tuple(np.asarray(q.boxes).ravel())): q for q in ds.object}
    assert len(samples) == len(ds.object) == 5 * 4 and "object: answer does not read back" not in str(summary.dropped)
    for s in samples:
        q = truth[(s.stamps[0], s.truth["question"], tuple(np.ravel(s.truth["boxes"])))]
        assert s.truth["kind"] == q.category and s.truth["value_m"] == q.truth_m
        boxes = re.findall(r"bounding box region \(\d+, \d+, \d+, \d+\)", s.prompt)
        assert len(boxes) == len(q.boxes) and "Region [" not in s.prompt
        assert s.answer == answers.format_object_quantity(q.category, q.truth_m, *boxes)
        assert answers.parse_object(s.answer).value.quantity_m == pytest.approx(q.truth_m, abs=0.0051)


def test_split_is_by_time_and_images_are_written_once(exported) -> None:
    out, summary = exported
    seq, _ = eval_dataset("z_depth")
    stamps = [f.stamp_ns for f in seq.frames]
    cut = time_cut(stamps, 0.3)
    train, val = read_jsonl(out / "train.jsonl"), read_jsonl(out / "val.jsonl")
    assert train and val
    assert all(st <= cut for s in train for st in s.stamps)
    assert all(st > cut for s in val for st in s.stamps)
    images = {p for s in train + val for p in s.images}
    assert len(images) == summary.images == len(list((out / "images").rglob("*.png")))
    for p in images:
        assert (out / p).is_file()
    counts = json.loads((out / "summary.json").read_text())["counts"]
    assert counts["train"]["depth"] == sum(s.task == "depth" for s in train)


def test_prompts_are_what_the_node_sends(exported) -> None:
    """Text and unified image of a sample == the pipeline's question for the same pixel."""
    import cv2

    from vlm3_ros.tasks.pipeline import Pipeline
    from vlm3_ros.testing.scripted_backend import ScriptedBackend

    out, _ = exported
    s = next(x for x in read_jsonl(out / "val.jsonl") if x.task == "depth")
    seq, _ = eval_dataset("z_depth")
    frame = next(f for f in seq.frames if f.stamp_ns == s.stamps[0])
    asked = []
    backend = ScriptedBackend(lambda q, i: asked.append(q) or "<answer> 1.0 </answer>")
    Pipeline({"depth": backend}, pipeline_settings(build_config({}, require_backend=False))).depth(
        frame, np.array([s.truth["pixel"]]))
    q = asked[0]
    assert q.text == s.prompt
    stored = cv2.cvtColor(cv2.imread(str(out / s.images[0])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(stored, q.images[0])


def test_messages_render_through_the_chat_template(exported, tiny_checkpoint) -> None:
    """The layout is transformers' chat-template input: the rendered conversation is the user
    turn the node's engine renders, followed by the assistant's answer."""
    from vlm3_ros.inference.transformers_engine.model_loading import load_processor

    out, _ = exported
    s = read_jsonl(out / "train.jsonl")[0]
    proc = load_processor(str(tiny_checkpoint))
    whole = proc.apply_chat_template(s.messages(), tokenize=False)
    prompt = proc.apply_chat_template(s.messages()[:1], add_generation_prompt=True, tokenize=False)
    assert whole == prompt + s.answer + "<|im_end|>\n"
    assert whole.count("<|image_pad|>") == len(s.images) == 1


def test_bad_sample_lines_say_where(tmp_path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}], "images": []}\n')
    with pytest.raises(SampleError, match=r"x\.jsonl:1"):
        read_jsonl(p)
    with pytest.raises(SampleError, match="export-sft"):
        read_jsonl(tmp_path / "missing.jsonl")
    s = Sample("depth", "train", ("a.png",), "q", "a")
    assert Sample.from_json(s.to_json()) == s


def test_cli_help_and_bad_input(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        export_sft.main(["--help"])
    assert e.value.code == 0
    assert "train.jsonl" in capsys.readouterr().out
    assert export_sft.main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    assert export_sft.main([str(BAG_PATHS["mcap"]), "--out", str(tmp_path / "o"), "--val-fraction", "1.5"]) == 2
    assert "val_fraction" in capsys.readouterr().err
