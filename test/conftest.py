"""Test-run setup: loopback DDS and a private ROS_DOMAIN_ID, before anything imports rclpy; the
fixtures every layer's tests share (the bundled bag's truth, a serving core on it, the tiny
checkpoint). DDS fixtures live in test/ros/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlm3_ros.readers.bag import BagReader
from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools import ros_env

ros_env.apply()

TEST_DATA = Path(__file__).parent / "data"


def pytest_report_header(config) -> str:
    """Say in every log which distro and library versions ran (CI runs Kilted, Jazzy, 3.10 core)."""
    return f"vlm3_ros environment: {ros_env.describe()} [VLM3_DISTRO={os.environ.get('VLM3_DISTRO', '-')}]"


@pytest.fixture(scope="session")
def rclpy_context() -> Iterator[None]:
    """rclpy initialised once for the whole session (tests create their own nodes)."""
    import rclpy

    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    """The tiny UNTRAINED real-architecture checkpoint (built by setup; rebuilt here if missing)."""
    from vlm3_ros.inference.assets import make_test_checkpoint

    return make_test_checkpoint(ros_env.cache_dir() / "tiny_qwen3_vl")


@pytest.fixture(scope="session")
def bag_truth():
    r = BagReader(BAG_PATHS["mcap"])
    images = [rec.value for rec in r.records(("image",))]
    depth = {s: rec.depth_m() for s, rec in r.depth_images().items()}
    return images, depth, r.trajectory()


@pytest.fixture(scope="session")
def bag_camera():
    """The bundled bag's camera stream: (stamp_ns, frame_id, rgb, CameraInfoData) per image."""
    r = BagReader(BAG_PATHS["mcap"])
    infos = {rec.value.stamp_ns: rec.value.info for rec in r.records(("camera_info",))}
    out = []
    for rec in r.records(("image",)):
        im = rec.value
        out.append((im.stamp_ns, im.frame_id, im.rgb(), infos[im.stamp_ns]))
    return out


@pytest.fixture
def gt_core(bag_camera):
    """A serving core (no ROS) answering with the ground-truth TEST DOUBLE from the bundled bag,
    fed the bag's camera stream; vo and sparse depth off unless a test turns them on."""
    from vlm3_ros.testing.cores import ground_truth_core

    core = ground_truth_core(bag_camera)
    yield core
    core.cleanup()


@pytest.fixture(scope="session")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """RealSense-, ZED- and OAK-style bags repacked from the bundled TUM frames (raw, compressed,
    the RealSense one in sqlite3 too), written once per run: name -> bag folder."""
    from vlm3_ros.testing.recordings import write_all

    return write_all(tmp_path_factory.mktemp("recordings"))
