"""Static checks of the launch file (launch/launch_ros are not installable here), the parameter
file, the bring-up translation and parameter validation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from vlm3_ros.params.config import ConfigError, build_config, validate_value
from vlm3_ros.params.files import read_params_file
from vlm3_ros.params.launch_args import EXECUTABLE, LAUNCH_ARGS, NODE_NAME, parameter_overrides
from vlm3_ros.params.table import SPECS
from vlm3_ros.tools.bringup import ros_args

ROOT = Path(__file__).resolve().parents[3]
LAUNCH = ROOT / "launch" / "perception.launch.py"


def executables() -> dict[str, str]:
    out = {}
    for line in (ROOT / "resource" / "executables.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, target = line.split()
            out[name] = target
    return out


def test_launch_file_parses_and_names_installed_executable() -> None:
    tree = ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))
    compile(tree, str(LAUNCH), "exec")
    funcs = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    assert len(calls) == 1
    kw = {k.arg: k.value for k in calls[0].keywords}
    assert isinstance(kw["package"], ast.Constant) and kw["package"].value == "vlm3_ros"
    assert isinstance(kw["executable"], ast.Name) and kw["executable"].id == "EXECUTABLE"
    assert EXECUTABLE in executables()
    assert NODE_NAME == "vlm3_perception"


def test_every_launch_argument_sets_a_declared_parameter() -> None:
    for arg in LAUNCH_ARGS:
        if arg.parameter:
            assert arg.parameter in SPECS, f"launch argument {arg.name} sets undeclared {arg.parameter}"
    # not given: nothing overrides the params file
    assert parameter_overrides({a.name: a.default for a in LAUNCH_ARGS}) == {}
    given = {"enabled_tasks": "depth,pose", "vo_enabled": "false", "sparse_depth_rate": "2.5", "device": "cuda:1",
             "use_compressed": "true", "depth_url": "http://gpu1:8000/v1"}
    typed = parameter_overrides(given)
    for name, value in typed.items():
        validate_value(name, value)
    assert typed == {"enabled_tasks": ["depth", "pose"], "vo.enabled": False, "sparse_depth.rate_hz": 2.5,
                     "model.device": "cuda:1", "use_compressed": True, "remote.depth_url": "http://gpu1:8000/v1"}


def test_params_file_declares_only_known_parameters() -> None:
    y = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())
    assert list(y) == [f"/**/{NODE_NAME}"], "the shipped file must match the node in any namespace"
    params = read_params_file(ROOT / "config" / "perception.yaml")
    unknown = set(params) - set(SPECS)
    assert not unknown, f"config/perception.yaml sets undeclared parameters {unknown}"
    for k, v in params.items():
        validate_value(k, v)
    # With checkpoint paths filled in, the shipped file is a valid configuration.
    build_config({**params, **{f"model.{t}_path": "/models/x" for t in ("depth", "pose", "corr", "object")}})


def test_bringup_translates_launch_arguments() -> None:
    out = ros_args(["depth_model:=/m/d", "enabled_tasks:=depth", "image_topic:=/cam/img"])
    assert out[:4] == ["--ros-args", "-r", f"__node:={NODE_NAME}", "--params-file"]
    assert "model.depth_path:=/m/d" in out and "enabled_tasks:=[depth]" in out and "image_topic:=/cam/img" in out
    with pytest.raises(SystemExit, match="unknown argument"):
        ros_args(["deph_model:=/x"])
    with pytest.raises(SystemExit, match="NAME:=VALUE"):
        ros_args(["depth_model=/x"])


def test_a_params_file_is_not_overridden_by_arguments_not_given(tmp_path: Path) -> None:
    """Only the launch arguments given on the command line follow --params-file (later wins)."""
    f = tmp_path / "robot.yaml"
    out = ros_args([f"params_file:={f}"])
    assert out == ["--ros-args", "-r", f"__node:={NODE_NAME}", "--params-file", str(f)]
    out = ros_args([f"params_file:={f}", "vo_enabled:=false", "namespace:=/r1"])
    assert out[out.index("--params-file") + 1] == str(f) and out[-2:] == ["-p", "vo.enabled:=false"]
    assert "__ns:=/r1" in out


def test_a_depth_only_robot_configures_with_vo_and_sparse_depth_following_the_tasks() -> None:
    from vlm3_ros.params.mapping import serving_settings

    cfg = build_config({"backend": "remote", "enabled_tasks": ["depth"]})
    s = serving_settings(cfg)
    assert not s.vo.enabled and s.sparse.rate_hz == 1.0
    assert cfg.notes() == ["visual odometry is off: it needs the pose task (enabled_tasks has no 'pose')"]
    s = serving_settings(build_config({"backend": "remote", "enabled_tasks": ["pose"]}))
    assert s.vo.enabled and s.sparse.rate_hz == 0.0


@pytest.mark.parametrize("values, needle", [
    ({"backend": "transformers"}, "model.depth_path"),
    ({"backend": "ground_truth"}, "ground_truth.bag"),
    ({"backend": "remote", "remote.url": "ftp://x"}, "http"),
    ({"enabled_tasks": ["depth", "fly"], "backend": "remote"}, "enabled_tasks"),
    ({"qos_depth": 0}, "minimum"),
    ({"vo.camera_extrinsic": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0], "backend": "remote"}, "unit quaternion"),
    ({"backend": "remote", "remote.pose_url": "localhost:8000"}, "remote.pose_url"),
    ({"backend": "remote", "sparse_depth.grid_cols": 100, "sparse_depth.grid_rows": 100}, "max_points_per_request"),
    ({"model.dtype": "int4"}, "must be one of"),
    ({"stamp_tolerance_s": "0.1"}, "must be a number"),
])
def test_config_validation_names_the_parameter(values: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        build_config(values)


def test_rviz_config_shows_the_node_outputs() -> None:
    """config/vlm3.rviz parses and its displays subscribe to what the node publishes."""
    rviz = yaml.safe_load((ROOT / "config" / "vlm3.rviz").read_text())
    displays = {d["Class"]: d for d in rviz["Visualization Manager"]["Displays"]}
    topics = {d["Name"]: d.get("Topic", {}).get("Value") for d in rviz["Visualization Manager"]["Displays"]}
    node = f"/{NODE_NAME}"
    assert topics["VLM3 debug image"] == f"{node}/debug_image"
    assert topics["Sparse depth"] == f"{node}/sparse_depth"
    assert topics["Answered depth points and VO path"] == f"{node}/markers"
    assert topics["Visual odometry"] == f"{node}/odom"
    assert {"rviz_default_plugins/TF", "rviz_default_plugins/MarkerArray", "rviz_default_plugins/PointCloud2",
            "rviz_default_plugins/Odometry", "rviz_default_plugins/Image"} <= set(displays)
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == "odom"
