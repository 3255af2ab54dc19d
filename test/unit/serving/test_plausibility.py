"""Plausibility at the node's edges, with a reason: the camera extrinsic (the vo.camera_extrinsic
parameter and a TF-derived one) and request text with control characters."""

from __future__ import annotations

import numpy as np
import pytest

from vlm3_ros.geometry.pose import make_T
from vlm3_ros.params.config import ConfigError, build_config
from vlm3_ros.serving.core import HealthLevel, TfEdge
from vlm3_ros.serving.plausibility import MAX_EXTRINSIC_TRANSLATION_M, extrinsic_problem, text_problem
from vlm3_ros.serving.status import StatusCode

MOUNT_Q = [-0.5, 0.5, -0.5, 0.5]  # the default optical mount


@pytest.mark.parametrize("T, needle", [
    (make_T(np.eye(3), [1e6, 0.0, 0.0]), "beyond 300 m"),
    (make_T(np.eye(3), [0.0, 250.0, 250.0]), "353.553 m from the base"),
    (make_T(5.0 * np.eye(3), [0.1, 0.0, 0.0]), "not a proper rotation"),
    (make_T(np.diag([1.0, 1.0, -1.0]), [0.1, 0.0, 0.0]), "det is -1"),
    (np.full((4, 4), np.nan), "finite 4x4"),
])
def test_an_implausible_extrinsic_is_told_why(T, needle) -> None:
    problem = extrinsic_problem(T)
    assert problem is not None and needle in problem, problem


def test_a_robot_mount_is_plausible() -> None:
    assert extrinsic_problem(make_T(np.eye(3), [0.2, 0.0, 1.5])) is None
    assert extrinsic_problem(make_T(np.eye(3), [MAX_EXTRINSIC_TRANSLATION_M - 1.0, 0.0, 0.0])) is None


@pytest.mark.parametrize("ext, needle", [
    ([1e6, 0.0, 0.0, *MOUNT_Q], "vo.camera_extrinsic is implausible: its translation"),
    ([0.0, 0.0, 301.0, *MOUNT_Q], "beyond 300 m"),
])
def test_the_extrinsic_parameter_is_refused_with_the_reason(ext, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        build_config({"backend": "remote", "vo.camera_extrinsic": ext})
    assert build_config({"backend": "remote", "vo.camera_extrinsic": [0.3, 0.0, 1.2, *MOUNT_Q]})


def test_an_implausible_tf_extrinsic_is_counted_and_the_parameter_used(gt_core, bag_camera) -> None:
    stamp, frame_id = bag_camera[0][0], bag_camera[0][1]
    gt_core.camera.on_tf([TfEdge("base_link", "mast", 0, (0.0, 0.0, 900.0), (0.0, 0.0, 0.0, 1.0)),
                          TfEdge("mast", frame_id, 0, (0.0, 0.0, 0.0), tuple(MOUNT_Q))], static=True)
    assert gt_core.counters["tf_rejected"] == 0  # each edge is within the TF tree's own limit
    T = gt_core.camera.extrinsic(gt_core.camera.sync.by_stamp(stamp))
    assert np.array_equal(T, gt_core.camera.T_base_cam_param)
    assert gt_core.counters["extrinsic_rejected"] == 1
    assert "TF chain base_link -> " + frame_id + " rejected: its translation" in gt_core.camera.extrinsic_note
    health = {h.name: h for h in gt_core.health()}
    assert health["camera"].values["extrinsic_rejected"] == 1


@pytest.mark.parametrize("text, needle", [
    ("Region [0]\x00 how far?", "U+0000 at position 10"),
    ("\x1b[2JRegion [0]?", "U+001B at position 0"),
    ("Region [0]\x7f?", "U+007F"),
    ("Region [0]\x85?", "U+0085"),
])
def test_control_characters_are_told_by_code_point_and_position(text, needle) -> None:
    problem = text_problem("question", text)
    assert problem is not None and needle in problem and "remove it" in problem, problem


def test_tab_newline_and_other_scripts_are_plain_text() -> None:
    assert text_problem("question", "Region [0]\tis it\nleft of Region [1]? Größe 距离") is None


def test_a_question_with_a_control_character_is_refused_and_counted(gt_core, bag_camera) -> None:
    from vlm3_ros.serving.core import FrameMode, FrameRef

    ref = FrameRef(FrameMode.BY_STAMP, bag_camera[2][0])
    boxes = np.array([[1.0, 1.0, 20.0, 20.0]])
    r = gt_core.services.object_query(ref, boxes, "How far is Region [0]?\x07")
    assert r.code == StatusCode.INVALID_REQUEST and "question holds the control character U+0007" in r.message
    r = gt_core.services.object_query(ref, boxes, "How far is Region [0]?", ["chair\x00"])
    assert r.code == StatusCode.INVALID_REQUEST and "region 0 label holds the control character U+0000" in r.message
    r = gt_core.services.object_query(ref, boxes, "How far is Region [0]?", ["chair"])
    assert r.code != StatusCode.INVALID_REQUEST, r.message
    requests = {h.name: h for h in gt_core.health()}["requests"]
    assert requests.level == HealthLevel.OK and requests.values["rejected_text"] == 2
