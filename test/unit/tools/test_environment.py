"""The environment a test run uses is the one its distro names: CI runs the suite on Kilted
(3.11) and Jazzy (3.12) wheels and the core on 3.10; a mixed-up venv must fail here, not pass on
the wrong ROS 2."""

from __future__ import annotations

import os
import sys

import pytest

from vlm3_ros.tools import ros_env

# what scripts/setup.sh --distro D builds
EXPECTED = {"kilted": ((3, 11), "kilted"), "jazzy": ((3, 12), "jazzy"), "core": ((3, 10), None)}
DISTRO = os.environ.get("VLM3_DISTRO", "")


@pytest.mark.skipif(DISTRO not in EXPECTED, reason=f"VLM3_DISTRO={DISTRO!r} is not a wheel/core setup")
def test_the_run_uses_its_distros_python_and_ros() -> None:
    python, ros = EXPECTED[DISTRO]
    assert sys.version_info[:2] == python, f"{DISTRO} runs on Python {python}, this is {sys.version}"
    found = ros_env.rclpy_distribution()
    if ros is None:
        assert found is None, f"the core run must not see a ROS 2, found {found}"
    else:
        assert found is not None and found[0] == ros, f"{DISTRO} run imports rclpy of {found}"


def test_describe_names_python_and_the_model_libraries() -> None:
    line = ros_env.describe()
    assert f"Python {sys.version_info[0]}.{sys.version_info[1]}." in line
    assert "transformers " in line and "torch " in line
