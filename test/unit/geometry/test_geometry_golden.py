"""Golden tests: the geometry core against every number in the VLM3 contract and the `focal`
and `ros` sections of metric_vectors.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vlm3_ros.geometry import backproject as bp
from vlm3_ros.geometry import coords, pose
from vlm3_ros.geometry.camera import CameraInfoData, CameraModel, CameraModelError
from vlm3_ros.geometry.unify import UnifyConfig, plan
from vlm3_ros.tasks.task_registry import TASKS

TEST_DATA = Path(__file__).resolve().parents[2] / "data"

VECTORS = json.loads((TEST_DATA / "metric_vectors.json").read_text())
REL = 1e-9


def pinhole(w: int, h: int, fx: float, fy: float, cx: float, cy: float) -> CameraModel:
    return CameraModel.from_camera_info(CameraInfoData.from_intrinsics(w, h, fx, fy, cx, cy))


@pytest.mark.parametrize("case", VECTORS["focal"]["cases"], ids=lambda c: c["name"])
@pytest.mark.parametrize("target", [1000, 750])
def test_focal_unification_matches_reference(case: dict, target: int) -> None:
    fx, fy, cx, cy = case["intrinsics"]
    cam = pinhole(*case["size"], fx, fy, cx, cy)
    exp = case[f"target_{target}"]
    view = plan(cam, UnifyConfig(target_focal=float(target), max_long_edge=100_000))
    assert view.sx == pytest.approx(exp["scale"], rel=REL)
    assert [view.width, view.height] == exp["new_size"]
    got = [view.K[0, 0], view.K[1, 1], view.K[0, 2], view.K[1, 2]]
    assert got == pytest.approx(exp["new_intrinsics"], rel=REL)
    mapped = view.to_unified_int(np.array(case["pixels"], dtype=float))
    assert mapped.tolist() == exp["mapped_pixels"]
    # The prompt integers of the pixels a marker can be drawn at (inside the unified image).
    keep = np.array(exp["marker_drawable(eval keeps)"])
    n = coords.depth_to_prompt(mapped, view.width, view.height)
    assert n[keep].tolist() == np.array(exp["vlm3_norm2000_inferred"])[keep].tolist()


def test_contract_fx_ne_fy_follows_reference_by_default() -> None:
    # SpatialRGPT sample: fx 902.466, fy 901.393 at 1024x768 -> 1134x851, fx 1000, fy 998.81.
    cam = pinhole(1024, 768, 902.466, 901.393, 511.4, 383.7)
    view = plan(cam, TASKS["object"].unify)
    assert (view.width, view.height) == (1134, 851)
    assert view.K[0, 0] == pytest.approx(1000.0)
    assert view.K[1, 1] == pytest.approx(998.81, abs=5e-3)
    eq = plan(cam, UnifyConfig(target_focal=1000.0, equalize_focal=True))
    assert eq.K[0, 0] == pytest.approx(1000.0) and eq.K[1, 1] == pytest.approx(1000.0)
    assert eq.height == int(768 * 1000.0 / 901.393)


def test_contract_depth_prompt_integers() -> None:
    resized = np.array([[191, 119], [10, 488], [1182, 773], [0, 410], [710, 320]])
    expected = [[314, 259], [16, 1061], [1946, 1680], [0, 891], [1169, 696]]
    assert coords.depth_to_prompt(resized, 1215, 920).tolist() == expected


def test_contract_correspondence_long_edge_and_normalisation() -> None:
    cam = pinhole(600, 400, 500.0, 500.0, 300.0, 200.0)
    view = plan(cam, TASKS["corr"].unify)
    assert (view.width, view.height) == (1024, 683)
    uv = view.to_unified(np.array([[264.0, 24.0]]))
    assert uv[0] == pytest.approx([450.56, 40.96], rel=1e-12)
    norm = coords.corr_to_norm(uv, view.width, view.height)
    assert norm[0] == pytest.approx([440.0, 59.971], abs=1e-3)
    assert coords.corr_to_prompt(uv, view.width, view.height).tolist() == [[440, 60]]
    # The answer (338.096, 52.013) maps back to original pixels of image 2 and round-trips.
    back = view.from_unified(coords.corr_from_norm(np.array([[338.096, 52.013]]), view.width, view.height))
    again = coords.corr_to_norm(view.to_unified(back), view.width, view.height)
    assert again[0] == pytest.approx([338.096, 52.013], abs=1e-9)


def test_contract_object_boxes_golden() -> None:
    """VLM3 sample_data/spatialrgpt_labels.json (SpatialRGPT-Bench qualitative_3TrgWgKqnf): the
    benchmark's original-pixel boxes of the 1024x768 image and the prompt integers VLM3 wrote."""
    original = np.array([[0, 30, 668, 767], [6, 292, 233, 432]])
    expected = np.array([[0, 39, 652, 999], [6, 380, 228, 562]])
    np.testing.assert_array_equal(coords.box_to_prompt(original, 1024, 768), expected)
    # the same through the object task's path: unify to focal 1000, corners to unified pixels,
    # divided by the unified size (before its integer truncation) -- 562.5 rounds to even
    cam = pinhole(1024, 768, 902.4662475585938, 901.3929443359375, 511.38848876953125, 383.7367858886719)
    view = plan(cam, TASKS["object"].unify)
    for box, exp in zip(original, expected, strict=True):
        corners = view.to_unified(np.array([[box[0], box[1]], [box[2], box[3]]], dtype=float))
        n = coords.box_to_prompt(corners.ravel(), 1024 * view.sx, 768 * view.sy)[0]
        np.testing.assert_array_equal(n, exp)


def test_depth_prompt_round_trip_bound() -> None:
    cam = pinhole(640, 480, 517.306408, 516.469215, 318.643040, 255.313989)
    view = plan(cam, TASKS["depth"].unify)
    rng = np.random.default_rng(0)
    uv = rng.uniform([0, 0], [639, 479], size=(5000, 2))
    n = coords.depth_to_prompt(view.to_unified(uv), view.width, view.height)
    back = view.from_unified(coords.depth_from_prompt(n, view.width, view.height))
    err = np.abs(back - uv)
    # Half a prompt step in original pixels: W / 4000 (0.16 px) in x, H / 4000 (0.12 px) in y.
    assert err[:, 0].max() <= 640 / 4000 + 1e-9
    assert err[:, 1].max() <= 480 / 4000 + 1e-9


ROS = VECTORS["ros"]


def ros_camera() -> CameraModel:
    ci = ROS["camera_info"]
    return CameraModel.from_camera_info(CameraInfoData(
        width=ci["width"], height=ci["height"], k=tuple(ci["k"]), d=tuple(ci["d"]),
        distortion_model=ci["distortion_model"], r=tuple(ci["r"]), p=tuple(ci["p"]),
        binning_x=ci["binning_x"], binning_y=ci["binning_y"], roi_x_offset=ci["roi"]["x_offset"],
        roi_y_offset=ci["roi"]["y_offset"], roi_width=ci["roi"]["width"], roi_height=ci["roi"]["height"]))


def test_camera_info_binning_and_roi() -> None:
    cam = ros_camera()
    adj = ROS["adjusted"]
    assert cam.K.tolist() == pytest.approx(np.array(adj["K"]), rel=REL)
    assert cam.P.tolist() == pytest.approx(np.array(adj["P"]), rel=REL)
    assert (cam.width, cam.height) == (400, 300)
    r = cam.rectified()
    assert [r.fx, r.fy, r.cx, r.cy] == pytest.approx([adj["fx"], adj["fy"], adj["cx"], adj["cy"]], rel=REL)


def test_backprojection_z_depth_and_rays() -> None:
    K = ros_camera().rectified().K
    g = ROS["backprojection"]
    pts = bp.backproject(np.array(g["pixels"]), np.array(g["z_depth"]), K, "z_depth")
    np.testing.assert_allclose(pts, g["points_optical"], rtol=REL, atol=1e-12)
    np.testing.assert_allclose(bp.rays_unit(np.array(g["pixels"]), K),
                               g["rays_unit_norm_python_image_geometry"], rtol=REL, atol=1e-12)
    np.testing.assert_allclose(bp.rays_z1(np.array(g["pixels"]), K), g["rays_z1_cpp_image_geometry"],
                               rtol=REL, atol=1e-12)


def test_backprojection_range_and_conversion() -> None:
    K = ros_camera().rectified().K
    g = ROS["range_to_point"]
    uv = np.array(g["pixels"])
    pts = bp.backproject(uv, np.array(g["range"]), K, "range")
    np.testing.assert_allclose(pts, g["points_optical"], rtol=REL, atol=1e-12)
    z = bp.convert_depth(np.array(g["range"]), uv, K, "range", "z_depth")
    np.testing.assert_allclose(z, np.array(g["points_optical"])[:, 2], rtol=REL)
    back = bp.convert_depth(z, uv, K, "z_depth", "range")
    np.testing.assert_allclose(back, g["range"], rtol=REL)


def test_pointcloud2_unorganized_layout() -> None:
    g = ROS["pointcloud2_unorganized_xyz32"]
    raw = bytes.fromhex(g["data_hex"])
    pts = np.frombuffer(raw, dtype="<f4").reshape(-1, 3)
    layout = bp.pack_points(pts)
    assert layout.data.hex() == g["data_hex"]
    assert [list(f) for f in layout.fields] == g["fields"]
    assert (layout.height, layout.width, layout.point_step, layout.row_step) == (
        g["height"], g["width"], g["point_step"], g["row_step"])
    assert layout.is_dense == g["is_dense"] or bool(np.all(np.isfinite(pts)))


def test_pointcloud2_organized_with_padding_and_nan() -> None:
    g = ROS["pointcloud2_depth_image_proc_organized"]
    pts = np.array([[np.nan] * 3 if p[0] is None else p for p in g["points"]], dtype=np.float64)
    layout = bp.pack_points(pts, organized_shape=(g["height"], g["width"]), point_step=g["point_step"])
    assert layout.data.hex() == g["data_hex"]
    assert (layout.point_step, layout.row_step, layout.is_dense) == (g["point_step"], g["row_step"], False)
    back = bp.unpack_xyz(layout.data, layout.point_step, 4)
    np.testing.assert_allclose(back[[0, 2, 3]], pts[[0, 2, 3]].astype(np.float32), rtol=1e-7)
    assert np.isnan(back[1]).all()


def test_pointcloud2_extra_fields() -> None:
    layout = bp.pack_points(np.zeros((2, 3)), extra={"depth_status": np.array([0, 2], dtype=np.uint8)})
    assert layout.fields[-1] == ("depth_status", 12, bp.PF_UINT8, 1)
    assert layout.point_step == 13 and layout.is_dense


def test_contract_euler_convention_golden_angle() -> None:
    R = pose.ypr_to_matrix(89.601, 2.599, 6.072)
    assert pose.rotation_angle_deg(R) == pytest.approx(89.655, abs=5e-4)
    # The "89.6547 degree rotation" from the sample's rounded angles (89.65478 exactly).
    assert pose.rotation_angle_deg(pose.ypr_to_matrix(89.6, 2.6, 6.1)) == pytest.approx(89.6547, abs=1e-4)


@pytest.mark.parametrize("case", VECTORS["pose"]["vlm3_text_answers"]["cases"], ids=range(3))
def test_pose_text_answer_vectors(case: dict) -> None:
    gt, pr = case["gt"], case["pred"]
    R_gt = pose.ypr_to_matrix(gt["yaw"], gt["pitch"], gt["roll"])
    R_pred = pose.ypr_to_matrix(pr["yaw"], pr["pitch"], pr["roll"])
    np.testing.assert_allclose(R_gt, case["R_gt"], atol=1e-12)
    np.testing.assert_allclose(R_pred, case["R_pred"], atol=1e-12)
    assert pose.rotation_angle_deg(R_gt) == pytest.approx(case["rot_angle_gt_deg"], rel=1e-9)
    assert pose.rotation_error_deg(R_gt, R_pred) == pytest.approx(case["rot_err_deg"], rel=1e-9)
    assert pose.translation_angle_deg(gt["t"], pr["t"]) == pytest.approx(
        case["trans_err_deg_folded"], abs=3e-3)
    # The reference's normalisation epsilon floors angles next to 180 degrees at ~2.6e-3 off.
    assert pose.translation_angle_deg(gt["t"], pr["t"], fold_sign=False) == pytest.approx(
        case["trans_err_deg_unfolded"], abs=3e-3)


def test_pose_round_trips_and_frames() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        yaw, pitch, roll = rng.uniform(-170, 170), rng.uniform(-85, 85), rng.uniform(-170, 170)
        assert pose.matrix_to_ypr(pose.ypr_to_matrix(yaw, pitch, roll)) == pytest.approx((yaw, pitch, roll))
        T = pose.make_T(pose.ypr_to_matrix(yaw, pitch, roll), rng.normal(size=3))
        np.testing.assert_allclose(pose.compose(T, pose.invert(T)), np.eye(4), atol=1e-12)
        q = pose.matrix_to_quat_xyzw(T[:3, :3])
        assert q[3] >= 0
        np.testing.assert_allclose(pose.quat_xyzw_to_matrix(q), T[:3, :3], atol=1e-12)
    # Moving forward along the optical z axis is moving along body +x.
    fwd = pose.make_T(np.eye(3), [0, 0, 1.0])
    np.testing.assert_allclose(pose.optical_to_body(fwd)[:3, 3], [1.0, 0, 0], atol=1e-12)
    # Turning right (yaw > 0, +rotation about optical +y) is a negative rotation about body +z.
    body = pose.optical_to_body(pose.make_T(pose.ypr_to_matrix(10, 0, 0), np.zeros(3)))
    assert math.degrees(math.atan2(body[1, 0], body[0, 0])) == pytest.approx(-10.0)


@pytest.mark.parametrize("bad, needle", [
    (dict(k=(0.0,) * 9), "focal length"),
    (dict(k=(500, 0, 320, 0, float("nan"), 240, 0, 0, 1)), "NaN"),
    (dict(k=(500, 0, 320, 0, -5, 240, 0, 0, 1)), "positive"),
    (dict(distortion_model="kannala_brandt"), "not supported"),
    (dict(d=(0.1, 0.2)), "5 coefficients"),
    (dict(width=0), "size"),
    (dict(k=(500, 0, 320)), "9 elements"),
    # plausibility: what a robot's driver or a unit mix-up sends (issue: implausible geometry accepted)
    (dict(r=(5, 0, 0, 0, 5, 0, 0, 0, 5)), "R must be a rotation"),
    (dict(r=(1, 0, 0, 0, 1, 0, 0, 0, -1)), "R must be a rotation"),  # a reflection, det -1
    (dict(k=(500, 0, 1e9, 0, 500, 240, 0, 0, 1)), "principal point cx"),
    (dict(k=(500, 0, 320, 0, 500, -300, 0, 0, 1)), "principal point cy"),
    (dict(p=(500, 0, 320, 0, 0, 500, 5e6, 0, 0, 0, 1, 0)), r"principal point cy=5e\+06 \(P\)"),
    (dict(k=(500, 1e6, 320, 0, 500, 240, 0, 0, 1)), "skew"),
    (dict(d=(0.1, 0.2, 0.0, 0.0, 1e5)), r"D\[4\]=100000"),
    (dict(d=(0.1, 0.2, 3.0, 0.0, 0.0)), r"D\[2\]=3 is implausible"),
])
def test_camera_info_validation_errors(bad: dict, needle: str) -> None:
    base = dict(width=640, height=480, k=(500, 0, 320, 0, 500, 240, 0, 0, 1), d=(0,) * 5,
                distortion_model="plumb_bob")
    base.update(bad)
    with pytest.raises(CameraModelError, match=needle):
        CameraModel.from_camera_info(CameraInfoData(**base))


def test_plausible_calibrations_pass_the_plausibility_checks() -> None:
    """Real calibrations sit well inside the limits: a rectified stereo right camera (P with Tx, R a
    small rotation), a wide lens in the rational model, an off-centre ROI principal point."""
    c, s_ = math.cos(0.02), math.sin(0.02)
    stereo = CameraInfoData(width=640, height=480, k=(500, 0, 330, 0, 500, 250, 0, 0, 1),
                            d=(-0.3, 0.1, 0.001, -0.002, 0.0), distortion_model="plumb_bob",
                            r=(c, 0, s_, 0, 1, 0, -s_, 0, c), p=(480, 0, 320, -38.4, 0, 480, 240, 0, 0, 0, 1, 0))
    wide = CameraInfoData(width=1280, height=800, k=(420, 0.5, 650, 0, 420, 390, 0, 0, 1),
                          d=(25.1, 12.3, 0.0004, -0.0003, 0.3, 25.4, 20.1, 2.2), distortion_model="rational_polynomial")
    edge = CameraInfoData(width=640, height=480, k=(500, 0, -100, 0, 500, 700, 0, 0, 1), d=(), distortion_model="")
    for info in (stereo, wide, edge):
        assert CameraModel.from_camera_info(info).width == info.width


def test_image_size_mismatch_is_explained() -> None:
    cam = pinhole(640, 480, 500, 500, 320, 240)
    with pytest.raises(CameraModelError, match="does not belong"):
        cam.check_image_size(320, 240)


def test_low_focal_camera_is_clamped_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    cam = pinhole(1280, 720, 300.0, 300.0, 640, 360)
    view = plan(cam, UnifyConfig(target_focal=1000.0, max_long_edge=2560))
    assert view.clamped and max(view.width, view.height) <= 2560
    assert "clamped" in caplog.text
