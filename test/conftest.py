"""Test-run setup: loopback DDS and a private ROS_DOMAIN_ID, before anything imports rclpy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vlm3_ros.testing import ros_env

ros_env.apply()

TEST_DATA = Path(__file__).parent / "data"


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
    from vlm3_ros.assets import make_test_checkpoint
    from vlm3_ros.testing.ros_env import REPO_ROOT

    return make_test_checkpoint(REPO_ROOT / ".cache" / "vlm3_ros" / "tiny_qwen3_vl")
