"""Parameters are declared once, in the parameter table, and read one way: every list of a
parameter's choices elsewhere (launch arguments, `vlm3-ros eval` flags, the node's --help) is the
table's, and no code outside vlm3_ros/params reads a parameter by its name: it reads the
attributes of the settings object the mapping builds (vlm3_ros.params.node_settings)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from vlm3_ros.params.config import build_config
from vlm3_ros.params.launch_args import LAUNCH_ARGS
from vlm3_ros.params.mapping import node_settings, settings_from, with_live_changes
from vlm3_ros.params.table import PARAMS, SPECS, choices, parameters_help
from vlm3_ros.tools.eval_command import parser as eval_parser

ROOT = Path(__file__).resolve().parents[3]
# Layers that may import the table (vlm3_ros.testing.layers: params and above) and the launch files.
READERS = [*(ROOT / "vlm3_ros" / layer for layer in ("params", "eval", "training", "ros", "tools")), ROOT / "launch"]
WITH_CHOICES = [p for p in PARAMS if p.choices]
CHOICE_LISTS = [p for p in WITH_CHOICES if len(p.choices or ()) >= 2]  # one choice is no list to repeat


def _sources(skip: Path | None = None) -> list[Path]:
    return [f for d in READERS for f in sorted(d.rglob("*.py")) if skip is None or not f.is_relative_to(skip)]


def test_the_launch_arguments_list_the_tables_choices() -> None:
    args = {a.parameter: a for a in LAUNCH_ARGS if a.parameter}
    listed = [name for name in args if SPECS[name].choices]
    assert {"backend", "model.dtype"} <= set(listed)
    for name in listed:
        words = re.findall(r"[\w:]+", args[name].description)
        assert [w for w in words if w in SPECS[name].choices] == list(choices(name)), name


def test_the_eval_flags_take_the_tables_choices() -> None:
    flags = {a.dest: a for a in eval_parser()._actions}
    for dest, name in (("backend", "backend"), ("dtype", "model.dtype"), ("model_depth_type", "model.depth_type")):
        assert tuple(flags[dest].choices) == choices(name), dest


def test_the_node_help_lists_every_parameters_choices() -> None:
    text = parameters_help("perception_node")
    for spec in WITH_CHOICES:
        assert f"{spec.name} (default {spec.default!r} {{{', '.join(spec.choices or ())}}}" in text


def test_a_parameter_without_choices_says_so() -> None:
    with pytest.raises(KeyError, match="no choices"):
        choices("image_topic")


@pytest.mark.parametrize("spec", CHOICE_LISTS, ids=lambda s: s.name)
def test_no_choice_list_is_typed_again(spec) -> None:
    """A parameter's choices written out as a literal tuple or list, or joined by '|', appear
    nowhere but in the table, in every module that could take them from it."""
    values = spec.choices or ()
    listed = [", ".join(f"{q}{v}{q}" for v in values) for q in ("'", '"')]
    patterns = [f"{o}{x}{c}" for x in listed for o, c in ("()", "[]")] + [" | ".join(values)]
    table = ROOT / "vlm3_ros" / "params" / "table.py"
    found = [f"{f.relative_to(ROOT)}: {p}" for f in _sources() if f != table for p in patterns
             if p in f.read_text()]
    assert not found


def _reads_by_name(tree: ast.AST) -> list[ast.Subscript]:
    """``x["model.dtype"]``: a parameter's name as a subscript that is read (writing values
    before they are validated, ``values["enabled_tasks"] = ...``, is not reading them)."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Load)
            and isinstance(n.slice, ast.Constant) and n.slice.value in SPECS]


def test_no_parameter_is_read_by_name_outside_params() -> None:
    hits = [f"{f.relative_to(ROOT)}:{n.lineno}" for f in _sources(skip=ROOT / "vlm3_ros" / "params")
            for n in _reads_by_name(ast.parse(f.read_text()))]
    assert not hits
    # the check finds what it is for, so it cannot pass by finding nothing
    tree = ast.parse('cfg = {}\nrate = cfg["vo.rate_hz"]\ncfg["vo.enabled"] = True\n')
    assert [n.lineno for n in _reads_by_name(tree)] == [2]
    assert _reads_by_name(ast.parse((ROOT / "vlm3_ros" / "params" / "mapping.py").read_text()))


def test_one_settings_object_holds_every_route() -> None:
    cfg = build_config({"backend": "remote", "max_points_per_request": 90, "qos_reliability": "reliable",
                        "use_compressed": True, "vo.rate_hz": 2.5, "image_topic": "/cam/img"})
    s = node_settings(cfg)
    assert s.pipeline.max_points == 90 and s.serving.image_topic == "/cam/img" and s.serving.vo.rate_hz == 2.5
    assert s.camera.reliable and s.camera.use_compressed and s.camera.depth == SPECS["qos_depth"].default
    assert set(s.backends) == set(s.tasks) == set(cfg.tasks) and s.backend == "remote"
    assert s.parameters["max_points_per_request"] == 90
    with pytest.raises(TypeError):
        s.parameters["max_points_per_request"] = 10  # type: ignore[index]  # a record, read-only


def test_live_changes_reach_the_pipelines_point_limit_without_reading_the_prompts_file_again(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text('depth: "Depth at ({nx}, {ny})? Answer in <answer> </answer> tags."\n')
    values = {"backend": "remote", "prompts_file": str(prompts)}
    s = settings_from(values)
    prompts.unlink()  # configured: the file is not read again for a live change
    live = with_live_changes(s, build_config({**values, "max_points_per_request": 120, "max_regions_per_request": 3}))
    assert live.pipeline.max_points == 120 and live.serving.max_regions == 3
    assert live.pipeline.prompts == s.pipeline.prompts and live.pipeline.unify == s.pipeline.unify
