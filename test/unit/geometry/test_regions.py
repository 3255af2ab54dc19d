"""Region quantities (geometry.regions) against closed-form scenes: a wall at known depth seen by a
pinhole camera, and point clusters with known centres and extents."""

from __future__ import annotations

import numpy as np
import pytest

from vlm3_ros.geometry import regions
from vlm3_ros.geometry.camera import CameraInfoData, CameraModel

F, W, H = 500.0, 640, 480


def pinhole() -> CameraModel:
    return CameraModel.from_camera_info(CameraInfoData.from_intrinsics(W, H, F, F, W / 2, H / 2))


def test_region_points_lie_on_the_wall_where_the_pinhole_model_puts_them() -> None:
    depth = np.full((H, W), 2.0)
    depth[:, :100] = 0.0                                   # no reading there: left out
    pts = regions.region_points(np.array([50, 100, 250, 300]), depth, pinhole(), stride=1)
    assert len(pts) == 150 * 200                           # columns 100..249, rows 100..299
    assert np.allclose(pts[:, 2], 2.0)
    assert pts[:, 0].min() == pytest.approx((100 - W / 2) / F * 2.0)
    assert pts[:, 0].max() == pytest.approx((249 - W / 2) / F * 2.0)
    assert pts[:, 1].min() == pytest.approx((100 - H / 2) / F * 2.0)


def test_width_and_height_of_a_box_on_a_wall_are_its_metric_size_within_the_percentiles() -> None:
    depth = np.full((H, W), 2.0)
    pts = regions.region_points(np.array([100, 100, 300, 200]), depth, pinhole(), stride=1)
    width_m, height_m = 200 / F * 2.0, 100 / F * 2.0      # 0.8 m x 0.4 m
    # the 5-95 % range of evenly spread points is 90 % of the extent
    assert regions.measure("width_data", [pts]) == pytest.approx(0.9 * width_m, rel=0.02)
    assert regions.measure("height_data", [pts]) == pytest.approx(0.9 * height_m, rel=0.02)


def test_distances_between_cluster_centres_by_axis() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal([0.0, 0.0, 2.0], 0.01, size=(200, 3))
    b = rng.normal([0.3, -0.4, 3.2], 0.01, size=(200, 3))
    b[:20] = [5.0, 5.0, 9.0]                                # 10 % background in the box: the median ignores it
    assert regions.measure("distance_data", [a, b]) == pytest.approx(np.linalg.norm([0.3, -0.4, 1.2]), abs=0.01)
    assert regions.measure("vertical_distance_data", [a, b]) == pytest.approx(0.4, abs=0.01)
    assert regions.measure("horizontal_distance_data", [a, b]) == pytest.approx(np.hypot(0.3, 1.2), abs=0.01)


def test_depth_coverage_and_refusals() -> None:
    depth = np.zeros((H, W))
    depth[:, :320] = 1.0
    depth[0, 0] = np.nan
    assert regions.depth_coverage(np.array([220, 0, 420, 10]), depth) == pytest.approx(0.5)
    assert regions.depth_coverage(np.array([10, 10, 10, 20]), depth) == 0.0     # empty box
    with pytest.raises(ValueError, match="needs 2 region"):
        regions.measure("distance_data", [np.zeros((5, 3))])
    with pytest.raises(ValueError, match="at least 3 depth points"):
        regions.measure("width_data", [np.zeros((2, 3))])
    with pytest.raises(ValueError, match="unknown region quantity"):
        regions.measure("volume", [np.zeros((5, 3))])
