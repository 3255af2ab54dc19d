"""The transform tree: chains composed through a URDF-like tree, unrelated branches ignored, dynamic
edges interpolated, bad edges rejected with a reason."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vlm3_ros.geometry.pose import invert, make_T, pose_from_tq
from vlm3_ros.geometry.tf_tree import TfError, TfTree, edge_matrix

OPTICAL_Q = (-0.5, 0.5, -0.5, 0.5)  # REP 103 body -> optical


def urdf_tree() -> tuple[TfTree, dict[str, np.ndarray]]:
    t = TfTree()
    e = {"base_link->camera_link": edge_matrix((0.1, 0.0, 0.25), (0, 0, 0, 1)),
         "camera_link->camera_rgb_optical_frame": edge_matrix((0.0, -0.02, 0.0), OPTICAL_Q),
         "base_link->laser": edge_matrix((0.2, 0.0, 0.15), (0, 0, 1, 0))}
    for k, T in e.items():
        parent, child = k.split("->")
        t.set_static(parent, child, T)
    return t, e


def test_chain_through_the_tree_ignores_unrelated_children() -> None:
    t, e = urdf_tree()
    T = t.lookup("base_link", "camera_rgb_optical_frame")
    want = e["base_link->camera_link"] @ e["camera_link->camera_rgb_optical_frame"]
    assert np.allclose(T, want)
    assert t.chain("base_link", "camera_rgb_optical_frame") == ["base_link", "camera_link", "camera_rgb_optical_frame"]
    # across branches: laser -> optical goes up to base_link and down again
    assert np.allclose(t.lookup("laser", "camera_rgb_optical_frame"), invert(e["base_link->laser"]) @ want)
    assert np.allclose(t.lookup("camera_rgb_optical_frame", "base_link"), invert(want))
    assert "(static)" in t.describe("base_link", "camera_rgb_optical_frame")


def test_missing_frames_and_separate_trees_are_explained() -> None:
    t, _ = urdf_tree()
    with pytest.raises(TfError, match="'camera_color_optical_frame' is not in the tree"):
        t.lookup("base_link", "camera_color_optical_frame")
    t.set_static("map", "odom", np.eye(4))
    with pytest.raises(TfError, match="separate trees"):
        t.lookup("base_link", "odom")
    with pytest.raises(TfError, match="close a loop"):
        t.set_static("camera_rgb_optical_frame", "base_link", np.eye(4))


def test_dynamic_edges_are_interpolated_in_time() -> None:
    t, _ = urdf_tree()
    # a pan joint between camera_link and a new mount: 0 deg at t=1 s, 90 deg at t=2 s
    t.set_static("base_link", "pan_base", np.eye(4))
    t.set_dynamic("pan_base", "camera_link", make_T(np.eye(3), [0.1, 0.0, 0.25]), 1_000_000_000)
    t.set_dynamic("pan_base", "camera_link",
                  make_T(Rotation.from_euler("z", 90, degrees=True).as_matrix(), [0.1, 0.0, 0.35]), 2_000_000_000)
    mid = t.lookup("base_link", "camera_link", 1_500_000_000)
    assert np.allclose(mid[:3, 3], [0.1, 0.0, 0.30])
    assert np.isclose(Rotation.from_matrix(mid[:3, :3]).magnitude(), np.radians(45))
    assert np.allclose(t.lookup("base_link", "camera_link", 2_050_000_000)[:3, 3], [0.1, 0.0, 0.35])  # tolerance
    with pytest.raises(TfError, match=r"not at 9\.000"):
        t.lookup("base_link", "camera_link", 9_000_000_000)
    assert "includes /tf edges" in t.describe("base_link", "camera_rgb_optical_frame")
    t.clear_dynamic()
    with pytest.raises(TfError):
        t.lookup("base_link", "camera_rgb_optical_frame")


@pytest.mark.parametrize("t, q, needle", [
    ((0, 0, 0), (0, 0, 0, 0), "zero-norm quaternion"),
    ((0, 0, 0), (float("nan"), 0, 0, 1), "non-finite"),
    ((1e308, 0, 0), (0, 0, 0, 1), "beyond"),
    ((0, float("inf"), 0), (0, 0, 0, 1), "non-finite"),
])
def test_bad_edges_are_rejected(t, q, needle: str) -> None:
    with pytest.raises(TfError, match=needle):
        edge_matrix(t, q)


def test_unnormalised_quaternion_is_normalised() -> None:
    assert np.allclose(edge_matrix((1, 2, 3), (0, 0, 0, 2)), pose_from_tq(np.array([1, 2, 3]), np.array([0, 0, 0, 1])))
