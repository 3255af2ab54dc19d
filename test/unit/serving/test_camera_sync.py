"""Image/CameraInfo pairing and the frame ring buffer."""

from __future__ import annotations

import numpy as np

from vlm3_ros.geometry.camera import CameraInfoData
from vlm3_ros.serving.camera_sync import CameraSync

INFO = CameraInfoData.from_intrinsics(8, 6, 5.0, 5.0, 4.0, 3.0, frame_id="cam")
IMG = np.zeros((6, 8, 3), np.uint8)


def test_exact_pairing_fallback_and_lookup() -> None:
    s = CameraSync(tolerance_s=0.01, capacity=3)
    s.add_camera_info(1_000_000_000, INFO)
    assert s.add_image(1_005_000_000, "cam", IMG) is not None          # within 10 ms: exact
    assert s.add_image(2_000_000_000, "cam", IMG) is not None          # no info at 2 s: fallback
    assert (s.stats.paired_exact, s.stats.paired_fallback) == (1, 1)
    assert s.by_stamp(2_000_000_000) is not None and s.by_stamp(3_000_000_000) is None
    assert s.latest().stamp_ns == 2_000_000_000


def test_image_before_its_camera_info_is_paired_when_the_info_arrives() -> None:
    s = CameraSync(tolerance_s=0.01)
    assert s.add_image(1_000_000_000, "cam", IMG) is None              # executor ran the image first
    paired = s.add_camera_info(1_000_000_000, INFO)
    assert [f.stamp_ns for f in paired] == [1_000_000_000]
    assert s.stats.no_camera_info == 0 and s.stats.paired_exact == 1 and s.stats.images == 1


def test_duplicates_out_of_order_and_bad_info_are_counted() -> None:
    s = CameraSync()
    s.add_camera_info(5, INFO)
    assert s.add_image(5, "cam", IMG) is not None
    assert s.add_image(5, "cam", IMG) is None and s.stats.duplicates == 1
    assert s.add_image(4, "cam", IMG) is None and s.stats.out_of_order == 1
    assert s.add_image(6, "cam", np.zeros((4, 4, 3), np.uint8)) is None and s.stats.bad_camera_info == 1
    assert "does not belong" in s.stats.last_error
    assert len(s.stamps()) == 1


def test_a_camera_info_of_another_frame_and_stamp_is_named_in_the_reason() -> None:
    s = CameraSync(tolerance_s=0.01)
    s.add_camera_info(5_000_000_000, CameraInfoData.from_intrinsics(64, 48, 50, 50, 32, 24, frame_id="left"))
    assert s.add_image(9_000_000_000, "right", np.zeros((48, 64, 3), np.uint8)) is None
    assert "latest CameraInfo has frame_id 'left' and stamp 5.000" in s.stats.last_error
    assert "frame_id 'right'" in s.stats.last_error
