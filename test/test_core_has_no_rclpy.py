"""The pure core must not import rclpy (or any ROS message package): it is reused outside ROS."""

from __future__ import annotations

import ast
from pathlib import Path

import vlm3_ros

PKG = Path(vlm3_ros.__file__).resolve().parent
ROS_MODULES = {"rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "nav_msgs", "tf2_msgs",
               "builtin_interfaces", "lifecycle_msgs", "diagnostic_msgs", "std_srvs"}
SHELL_DIRS = {"nodes"}  # the thin ROS shell


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
            if node.module in ("vlm3_ros.msg", "vlm3_ros.srv") or node.module.startswith("vlm3_ros.nodes"):
                out.add("vlm3_ros-interfaces")
    return out


def core_files() -> list[Path]:
    files = []
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG)
        if rel.parts[0] in SHELL_DIRS or rel.parts[0] == "data":
            continue
        files.append(p)
    return files


def test_core_modules_do_not_import_ros() -> None:
    files = core_files()
    assert len(files) >= 8, "the core files were not found"
    offenders = {}
    for p in files:
        bad = imported_modules(p) & (ROS_MODULES | {"vlm3_ros-interfaces"})
        if bad:
            offenders[str(p.relative_to(PKG))] = sorted(bad)
    assert not offenders, f"pure-core modules import ROS: {offenders}"


def test_checker_detects_an_rclpy_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import numpy\nfrom rclpy.node import Node\n")
    assert "rclpy" in imported_modules(f)
