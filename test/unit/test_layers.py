"""The package's layers: imports point down, no folder-level loop, nothing shipped imports
testing/, and the pure core (everything below ros/) imports neither rclpy nor any ROS message
package, so it is reused and tested outside ROS."""

from __future__ import annotations

from pathlib import Path

import pytest

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


ARCHITECTURE_PAGE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_architecture_page_matches_the_code() -> None:
    """The page's import graph and the table's import columns are what the generator makes from the
    code now; on a failure, run the command in the message and commit the page."""
    text = ARCHITECTURE_PAGE.read_text()
    assert layers.render_page(text) == text, (
        "docs/architecture.md disagrees with the code's imports: run "
        "`python -m vlm3_ros.testing.layers --write docs/architecture.md`")


def test_page_generator_rewrites_a_stale_graph_and_table() -> None:
    text = ARCHITECTURE_PAGE.read_text()
    stale = text.replace("  training   -> ", "  training   -> params, ", 1)
    row = next(line for line in text.splitlines() if line.startswith("| `training/` |"))
    stale = stale.replace(row, row.rsplit("|", 3)[0] + "| `params/` | (nothing) |")
    assert stale != text
    assert layers.render_page(stale) == text


def test_page_generator_refuses_a_page_without_markers_or_a_layer_row() -> None:
    text = ARCHITECTURE_PAGE.read_text()
    with pytest.raises(ValueError, match="markers"):
        layers.render_page(text.replace(layers.GRAPH_END, ""))
    row = next(line for line in text.splitlines() if line.startswith("| `runtime/` |"))
    with pytest.raises(ValueError, match="runtime"):
        layers.render_page(text.replace(row + "\n", ""))


def test_generated_interfaces_are_ros_and_show_in_the_graph() -> None:
    """vlm3_ros.msg / .srv / .action exist only in a built workspace: importing one is importing ROS."""
    assert {"msg", "srv", "action"} <= layers.GENERATED
    graph = layers.folder_graph()
    assert layers.INTERFACES in graph["ros"], "ros/ imports the generated interfaces"
    assert all(layers.INTERFACES not in graph[f] for f in graph if f not in layers.ROS_LAYERS | {layers.TEST_ONLY})
