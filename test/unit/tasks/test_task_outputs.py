"""What the tasks make of model output (empty, negative, enormous, cut off, impossible values)
and of requests beyond their limits: per-point codes and reasons, never an exception."""

from __future__ import annotations

import numpy as np
import pytest

from vlm3_ros.contract.question import BackendError
from vlm3_ros.geometry.camera import CameraInfoData, CameraModel
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.tasks.common import PointCode, RequestError
from vlm3_ros.tasks.pipeline import Pipeline
from vlm3_ros.testing.scripted_backend import ScriptedBackend


def _frame() -> Frame:
    cam = CameraModel.from_camera_info(CameraInfoData.from_intrinsics(64, 48, 50.0, 50.0, 32.0, 24.0))
    return Frame(np.zeros((48, 64, 3), np.uint8), cam, 1, "cam")


@pytest.mark.parametrize("reply, code, needle", [
    ("", PointCode.PARSE_FAILURE, "empty"),
    ("<answer> -2.0 </answer>", PointCode.INVALID_VALUE, "non-positive"),
    ("<answer> 0 </answer>", PointCode.INVALID_VALUE, "non-positive"),
    ("<answer> " + "9" * 500 + " </answer>", PointCode.PARSE_FAILURE, "finite"),
    ("<think>" + "x" * 1_000_000, PointCode.PARSE_FAILURE, "not closed"),
    ("<answer> 1.5 </answer>", PointCode.OK, ""),
])
def test_depth_model_output_matrix(reply: str, code: PointCode, needle: str) -> None:
    pipe = Pipeline({"depth": ScriptedBackend(lambda q, i: reply)})
    r = pipe.depth(_frame(), np.array([[10.0, 10.0]]), "z_depth")
    assert r.codes[0] == code and needle in r.reasons[0]
    assert (np.isfinite(r.depth[0])) == (code == PointCode.OK)


@pytest.mark.parametrize("replies, needle", [
    (["Rotation angle: 400 degrees", "Yaw=+1.0°, Pitch=+0.0°, Roll=+0.0°",
      "unit vector (2.0, 0.0, 0.0).", "Translation distance: 1.0 meters"], "norm"),
    (["Rotation angle: 4 degrees", "Yaw=+1.0°, Pitch=+95.0°, Roll=+0.0°",
      "unit vector (1.0, 0.0, 0.0).", "Translation distance: 1.0 meters"], "pitch"),
])
def test_pose_impossible_values_give_no_pose(replies: list[str], needle: str) -> None:
    pipe = Pipeline({"pose": ScriptedBackend(lambda q, i: replies[i])})
    r = pipe.pose(_frame(), _frame())
    assert r.T_a_b is None and any(needle in v for v in r.reasons.values()), r.reasons


def test_request_limits_in_the_pipeline() -> None:
    pipe = Pipeline({"depth": ScriptedBackend(lambda q, i: "<answer> 1 </answer>")})
    with pytest.raises(RequestError, match="maximum"):
        pipe.depth(_frame(), np.ones((10_000, 2)), "z_depth")
    with pytest.raises(RequestError, match="no pixels"):
        pipe.depth(_frame(), np.zeros((0, 2)), "z_depth")

    with pytest.raises(BackendError, match="not enabled"):
        pipe.pose(_frame(), _frame())
