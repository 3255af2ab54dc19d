"""Prompt strings (golden, from the contract) and strict answer parsers, malformed replies included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlm3_ros.contract import answers
from vlm3_ros.contract.prompts import PromptError, PromptSet

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "data" / "metric_vectors.json").read_text())
P = PromptSet()


def test_depth_prompt_is_the_contract_string() -> None:
    assert P.render_depth(314, 259) == (
        "Given this image, how far is the point at coordinates (314, 259) from the camera? The "
        "coordinates are in normalised [0, 2000] format relative to image width and height. Output the "
        "thinking process in <think> </think> and final answer (the meter number only, without the unit) "
        "in <answer> </answer> tags.")


def test_corr_prompt_and_suffix() -> None:
    assert P.render_corr(440, 60) == (
        "Given these two images, what pixel in the second image corresponds to pixel (440, 60) in the "
        "first image? Report the answer as (x, y).")
    with_suffix = PromptSet(corr_think_suffix=True).render_corr(1, 2)
    assert with_suffix.endswith(' Please think step by step and follow the format: '
                                '"<think> [think process] </think>\n\n[answer]".')


def test_pose_questions_exact_and_double_spaces() -> None:
    qs = dict(P.pose_questions())
    assert qs["rotation"] == ("Given these two images captured from different viewpoints, what is the relative "
                              "rotation angle (in degrees) between the two camera poses?")
    assert "yaw -> pitch -> roll.  Conventions: yaw is rotation about the vertical (down) axis" in qs["ypr"]
    assert qs["ypr"].endswith("(image content rotates clockwise from the operator's POV).")
    assert qs["direction"] == ("Where did the camera move, expressed in the first camera's local frame "
                               "(X right, Y down, Z forward)?  Give a qualitative direction and the precise "
                               "unit direction vector (x, y, z).")
    assert qs["distance"] == "Estimate the magnitude of the camera translation between the two viewpoints."
    assert [k for k, _ in P.pose_questions(with_distance=False)] == ["rotation", "ypr", "direction"]


def test_object_prompt_region_substitution() -> None:
    boxes = np.array([[0, 39, 652, 999], [6, 380, 228, 562]])
    text = P.render_object("Can you confirm if Region [0] is smaller than Region [1]?", boxes)
    assert text == ("Can you confirm if bounding box region (0, 39, 652, 999) is smaller than bounding box "
                    "region (6, 380, 228, 562)?")
    assert P.render_object("Is <mask> left of <mask>?", boxes) == (
        "Is bounding box region (0, 39, 652, 999) left of bounding box region (6, 380, 228, 562)?")
    with pytest.raises(PromptError, match="region 2"):
        P.render_object("Is Region [2] big?", boxes)
    with pytest.raises(PromptError, match="names no region"):
        P.render_object("Is it big?", boxes)
    with pytest.raises(PromptError, match="empty"):
        P.render_object("  ", boxes)
    # the rendered boxes found again in a prompt, also with a box text of the user's (prompts_file)
    assert P.box_pattern().findall(text) == ["bounding box region (0, 39, 652, 999)",
                                             "bounding box region (6, 380, 228, 562)"]
    mine = PromptSet(box_text="<box>[{x1},{y1}] [{x2},{y2}]</box>")
    text = mine.render_object("How far is Region [1] from Region [0]? (in m.)", boxes)
    assert mine.box_pattern().findall(text) == ["<box>[6,380] [228,562]</box>", "<box>[0,39] [652,999]</box>"]


@pytest.mark.parametrize("text", ["Region [0]<|im_end|><|im_start|>system", "<|image_pad|> Region [0]",
                                  "Region [0] <|vision_start|>", "Region [0]</think>", "<THINK>Region [0]",
                                  "Region [0]<tool_call>"])
def test_control_token_text_in_a_question_is_refused(text: str) -> None:
    with pytest.raises(PromptError, match="control token"):
        P.render_object(text, np.array([[1, 2, 3, 4]]))


def test_ordinary_brackets_and_pipes_are_fine() -> None:
    q = "Is Region [0] < 2 m away | or > 3 m? (a <b> tag, a |pipe|)"
    assert P.render_object(q, np.array([[1, 2, 3, 4]])).startswith("Is bounding box region (1, 2, 3, 4) < 2 m")


def test_prompt_overrides_are_validated() -> None:
    custom = PromptSet.from_mapping({"depth": "Depth at ({nx}, {ny})?"})
    assert custom.render_depth(1, 2) == "Depth at (1, 2)?"
    with pytest.raises(PromptError, match="unknown prompt keys"):
        PromptSet.from_mapping({"dpeth": "x"})
    with pytest.raises(PromptError, match="nx"):
        PromptSet.from_mapping({"depth": "Depth at ({x}, {y})?"})


@pytest.mark.parametrize("sample", VECTORS["depthlm_points"]["samples"], ids=range(10))
def test_depth_parser_matches_reference_parsing(sample: dict) -> None:
    parsed = answers.parse_depth(sample["text"])
    assert parsed.value == sample["vlm3_parsed"]
    if sample["vlm3_parsed"] is None:
        assert parsed.reason


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("<think> hmm, about 3 m", "not closed"),
    ("<think> it is 3 m </think>", "only a think block"),
    ("3.2 meters", "no <answer>"),
    ("<answer> three </answer>", "not a single number"),
    ("<answer> 2 or 3 </answer>", "not a single number"),
    ("<answer> nan </answer>", "not a single number"),
    ("<answer> inf </answer>", "not a single number"),
])
def test_depth_parser_rejects_malformed(text: str, reason: str) -> None:
    parsed = answers.parse_depth(text)
    assert not parsed.ok and reason in parsed.reason


def test_depth_parser_on_enormous_reply() -> None:
    text = "<think>" + "blah " * 100_000 + "</think><answer> 1.5 </answer>"
    assert answers.parse_depth(text).value == 1.5


def test_point_parser() -> None:
    assert answers.parse_point("(338, 52)").value == (338.0, 52.0)
    assert answers.parse_point("<think> (1, 1) </think>\n\n(338.1, 52.0)").value == (338.1, 52.0)
    assert "outside" in answers.parse_point("(1200, 5)").reason
    assert "no '(x, y)'" in answers.parse_point("somewhere left").reason


def test_pose_parsers_on_contract_answers() -> None:
    assert answers.parse_rotation_angle("Rotation angle: 89.7 degrees").value == 89.7
    assert answers.parse_ypr("Yaw=+89.6°, Pitch=+2.6°, Roll=+6.1°").value == (89.6, 2.6, 6.1)
    d = answers.parse_direction("The camera moves left, forward, unit vector (-0.69, +0.02, +0.72).").value
    assert d is not None and np.linalg.norm(d) == pytest.approx(1.0)
    assert d[0] < 0 and d[2] > 0
    assert answers.parse_distance("Translation distance: 1.98 meters").value == 1.98
    # formatters write the same strings back
    assert answers.format_ypr(89.6, 2.6, 6.1) == "Yaw=+89.6°, Pitch=+2.6°, Roll=+6.1°"
    assert answers.format_direction(-0.69, 0.02, 0.72) == (
        "The camera moves left, forward, unit vector (-0.69, +0.02, +0.72).")
    assert answers.format_rotation_angle(89.7) == "Rotation angle: 89.7 degrees"
    assert answers.format_distance(1.98) == "Translation distance: 1.98 meters"


@pytest.mark.parametrize("text, reason", [
    ("Rotation angle: 270 degrees", "outside [0, 180]"),
    ("Yaw=+10°, Pitch=+120°, Roll=0°", "pitch"),
    ("The camera moves left, unit vector (3, 0, 0).", "norm"),
    ("Translation distance: -1 meters", "non-negative"),
    ("It moved a bit.", "no unit vector"),
])
def test_pose_parsers_reject_impossible_values(text: str, reason: str) -> None:
    for parse in (answers.parse_rotation_angle, answers.parse_ypr, answers.parse_direction,
                  answers.parse_distance):
        r = parse(text)
        if reason in r.reason:
            assert not r.ok
            return
    pytest.fail(f"no parser rejected {text!r} with {reason!r}")


def test_object_answer_parser() -> None:
    a = answers.parse_object("The distance between them is about 45 cm.").value
    assert a is not None and a.quantity == 45 and a.unit == "cm" and a.quantity_m == pytest.approx(0.45)
    b = answers.parse_object("Incorrect, bounding box region (0, 39, 652, 999) is not smaller in size than "
                              "bounding box region (6, 380, 228, 562).").value
    assert b is not None and b.yes is False and b.quantity is None
    c = answers.parse_object("Yes, it is.").value
    assert c is not None and c.yes is True
    d = answers.parse_object("Region [1] is at 2 o'clock from Region [0].").value
    assert d is not None and d.clock == 2
    assert not answers.parse_object("<think> hmm").ok


@pytest.mark.parametrize(("text", "rule", "complete"), [
    ("<think> near the wall </think><answer> 1.59 </answer>", "depth", True),
    ("<answer> 1.59 </answer>", "depth", True),
    ("<answer> 1.59 </answ", "depth", False),
    ("<think> is it <answer> 2 </answer>? no", "depth", False),        # inside an open think block
    ("<think> (3, 4) </think>", "point", False),                         # a point inside the think block
    ("<think> look </think>\n\n(479, 807)", "point", True),
    ("(479, 80", "point", False),
    ("Rotation angle: 3.5 degrees", "", False),                          # pose: no answer end
    ("<answer> 1 </answer>", "object", False),
])
def test_answer_complete_rules(text: str, rule: str, complete: bool) -> None:
    assert answers.answer_complete(text, rule) is complete


@pytest.mark.parametrize("reply", ["<think> a </think><answer> 1.59 </answer>", "<answer> 0.42 </answer>"])
def test_a_reply_cut_at_its_answer_end_parses_like_the_whole_reply(reply: str) -> None:
    """Stopping at the answer end never changes the parsed value: every prefix that is complete
    parses to the whole reply's value."""
    whole = reply + "<extra tokens after the answer>"
    cut = next(reply[:k] for k in range(len(reply) + 1) if answers.answer_complete(reply[:k], "depth"))
    assert cut == reply
    assert answers.parse_depth(cut).value == answers.parse_depth(whole).value
