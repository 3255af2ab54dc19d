"""The allocator setting of vlm3_ros/inference/memory.py: applied once per process on glibc Linux
(these machines), and a later call asking for another threshold says it was not applied."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_applied_once_per_process() -> None:
    code = ("from vlm3_ros.inference import memory as m; "
            "print(m.return_large_buffers(), m.return_large_buffers(), m.return_large_buffers(1 << 20))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False"]
