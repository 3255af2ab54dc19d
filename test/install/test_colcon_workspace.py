"""vlm3_ros builds in a fresh colcon workspace the way a user's robot workspace holds it: a copy of
the package in src/, a plain `colcon build` (no symlinks), `source install/setup.bash`; then the
interfaces import from that install, `ros2 run`'s executables start, `ros2 launch` finds the launch
file and configs through the ament index. Runs against the ROS 2 of this run (Kilted or Jazzy
wheels; an apt install when sourced)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("VLM3_DISTRO") == "core", reason="the core run has no ROS 2 to build against"),
]


def package_files() -> list[str]:
    """What a clone holds: tracked plus new, not ignored, files (no venvs, builds or caches)."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


def without_this_checkouts_build(env: dict[str, str]) -> dict[str, str]:
    """The environment minus this checkout's own colcon install: the fresh workspace must stand on
    ROS 2 alone (the venv's wheels stay: they are the ROS 2 here)."""
    out = dict(env)
    for var in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "PYTHONPATH", "COLCON_PREFIX_PATH", "PATH"):
        parts = [p for p in out.get(var, "").split(os.pathsep) if p and "/.ws" not in p]
        out[var] = os.pathsep.join(parts)
    return out


def test_fresh_workspace_build_installs_a_runnable_package(tmp_path: Path) -> None:
    assert shutil.which("colcon"), "colcon is not installed (scripts/setup.sh installs it)"
    ws = tmp_path / "robot_ws"
    src = ws / "src" / "vlm3_ros"
    for rel in package_files():
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    env = without_this_checkouts_build(dict(os.environ))
    build = subprocess.run(
        ["colcon", "build", "--event-handlers", "console_cohesion-", "status-",
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    install = ws / "install"
    check = f"""
set -e
source {install}/setup.bash
python - <<'PY'
import vlm3_ros, vlm3_ros.srv, vlm3_ros.msg
from ament_index_python.packages import get_package_share_directory
from vlm3_ros.srv import GetDepth, EstimatePose, FindCorrespondence, ObjectQuery
print("module", vlm3_ros.srv.__file__)
print("share", get_package_share_directory("vlm3_ros"))
PY
{install}/vlm3_ros/lib/vlm3_ros/perception_node --help | head -3
{install}/vlm3_ros/lib/vlm3_ros/bag_player --help | head -3
"""
    run = subprocess.run(["bash", "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    module = next(line.split(" ", 1)[1] for line in lines if line.startswith("module "))
    share = Path(next(line.split(" ", 1)[1] for line in lines if line.startswith("share ")))
    # the interfaces and the share directory come from the new workspace, not this checkout's build
    assert module.startswith(str(install)), module
    assert share == install / "vlm3_ros" / "share" / "vlm3_ros"
    for rel in ("package.xml", "launch/perception.launch.py", "config/perception.yaml", "executables.txt"):
        assert (share / rel).is_file(), f"{rel} not installed"
    assert "usage" in run.stdout.lower()
