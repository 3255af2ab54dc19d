"""Every ``vlm3-ros`` command answers --help; unknown commands are an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("cmd", [
    [], ["node"], ["bringup"], ["play"], ["call"], ["demo"], ["inspect"], ["eval"], ["make-test-checkpoint"],
])
def test_every_command_has_help(cmd: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "vlm3_ros.tools.cli", *cmd, "--help"], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()


def test_unknown_command_is_an_error() -> None:
    r = subprocess.run([sys.executable, "-m", "vlm3_ros.tools.cli", "frobnicate"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "unknown command" in r.stderr
