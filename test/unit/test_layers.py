"""The package's layers: imports point down, no folder-level loop, nothing shipped imports
testing/, and the pure core (everything below ros/) imports neither rclpy nor any ROS message
package, so it is reused and tested outside ROS."""

from __future__ import annotations

from pathlib import Path

from vlm3_ros.testing import layers


def test_core_modules_do_not_import_ros() -> None:
    core = [p for p in layers.package_files() if layers.folder_of(p) not in layers.ROS_LAYERS | {layers.TEST_ONLY}]
    assert len(core) >= 30, "the core files were not found"
    offenders = [v for v in layers.violations() if "imports ROS" in v]
    assert not offenders, offenders


def test_imports_point_down_and_testing_is_for_tests_only() -> None:
    assert layers.violations() == []


def test_no_folder_level_import_loop() -> None:
    graph = layers.folder_graph()
    assert set(layers.LAYERS) <= set(graph), "a layer folder is missing"
    assert layers.cycles(graph) == []


def test_every_folder_is_a_known_layer() -> None:
    folders = {p.name for p in layers.PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= {*layers.LAYERS, layers.TEST_ONLY}, folders - {*layers.LAYERS, layers.TEST_ONLY}
    loose = sorted(p.name for p in layers.PKG.glob("*.py"))
    assert loose == ["__init__.py"], f"modules outside the layer folders: {loose}"


def test_checker_detects_an_rclpy_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import numpy\nfrom rclpy.node import Node\n")
    assert "rclpy" in [m.split(".")[0] for m, _ in layers.imports_of(f)]


def test_checker_detects_loops() -> None:
    assert layers.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert layers.cycles({"a": {"b"}, "b": set()}) == []
