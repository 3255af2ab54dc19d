"""Parameter files (the YAML ``--params-file`` takes) and NAME:=VALUE overrides, read the way
ROS 2 reads them, for the evaluation and the bring-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlm3_ros.params.config import ConfigError, build_config
from vlm3_ros.params.files import load_values, parse_override, read_params_file

ROOT = Path(__file__).resolve().parents[3]


def test_the_shipped_params_file_is_read() -> None:
    v = read_params_file(ROOT / "config" / "perception.yaml")
    assert v["backend"] == "transformers" and v["enabled_tasks"] == ["depth", "pose", "corr", "object"]
    assert v["model.depth_type"] == "range"


def test_sections_nesting_and_precedence(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters:\n    rectify: false\n    qos_depth: 3\n"
                 "/robot/vlm3_perception:\n  ros__parameters:\n    qos_depth: 7\n    model:\n      device: cuda:1\n"
                 "other_node:\n  ros__parameters:\n    qos_depth: 99\n")
    v = read_params_file(f)
    assert v == {"rectify": False, "qos_depth": 7, "model.device": "cuda:1"}


@pytest.mark.parametrize("text, needle", [
    ("other:\n  ros__parameters:\n    a: 1\n", "no section for node 'vlm3_perception'"),
    ("vlm3_perception:\n  params:\n    a: 1\n", "no 'ros__parameters'"),
    ("- a\n- b\n", "must map node names"),
])
def test_bad_params_files_are_explained(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        read_params_file(f)


def test_overrides_are_typed_like_ros_and_take_launch_argument_names() -> None:
    assert parse_override("rectify:=false") == ("rectify", False)
    assert parse_override("max_long_edge:=2048") == ("max_long_edge", 2048)
    assert parse_override("depth_model:=/m/d") == ("model.depth_path", "/m/d")
    assert parse_override("enabled_tasks:=depth,pose") == ("enabled_tasks", ["depth", "pose"])
    assert parse_override("enabled_tasks:=[depth]") == ("enabled_tasks", ["depth"])
    assert parse_override("image_topic:=123") == ("image_topic", "123")
    with pytest.raises(ConfigError, match="unknown parameter or launch argument 'deph_model'"):
        parse_override("deph_model:=/x")
    with pytest.raises(ConfigError, match="NAME:=VALUE"):
        parse_override("rectify=false")


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("vlm3_perception:\n  ros__parameters:\n    backend: remote\n    rectify: false\n")
    v = load_values(f, ["rectify:=true"])
    assert v == {"backend": "remote", "rectify": True}
    assert build_config(v)["remote.url"].startswith("http")
