"""Every ``vlm3-ros`` command answers --help; unknown commands are an error."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HAVE_ROS = importlib.util.find_spec("rclpy") is not None
ROS_COMMANDS = {"play", "call"}   # bringup and demo import ROS only when they run


@pytest.mark.parametrize("cmd", [
    [], ["node"], ["bringup"], ["play"], ["call"], ["demo"], ["inspect"], ["eval"], ["make-test-checkpoint"],
])
def test_every_command_has_help(cmd: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "vlm3_ros.tools.cli", *cmd, "--help"], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    if cmd and cmd[0] in ROS_COMMANDS and not HAVE_ROS:
        # a Python without ROS 2 (the core on 3.10): one line that says what is missing
        assert r.returncode == 2 and "needs ROS 2" in r.stderr and "Traceback" not in r.stderr, r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()


def test_unknown_command_is_an_error() -> None:
    r = subprocess.run([sys.executable, "-m", "vlm3_ros.tools.cli", "frobnicate"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "unknown command" in r.stderr
