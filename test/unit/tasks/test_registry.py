"""The task registry is the one list of tasks: parameters, launch arguments, defaults and the
pipeline all come from it, under one name per task."""

from __future__ import annotations

import pytest

from vlm3_ros.params.launch_args import LAUNCH_ARGS
from vlm3_ros.params.table import SPECS
from vlm3_ros.tasks.pipeline import PipelineSettings
from vlm3_ros.tasks.task_registry import TASK_NAMES, TASKS, spec


def test_the_four_contract_tasks_with_their_preprocessing() -> None:
    assert TASK_NAMES == ("depth", "pose", "corr", "object")
    assert TASKS["depth"].unify.target_focal == 1000.0 and TASKS["object"].unify.target_focal == 1000.0
    assert TASKS["pose"].unify.target_focal == 750.0 and TASKS["pose"].images == 2
    assert TASKS["corr"].unify.long_edge == 1024 and TASKS["corr"].unify.target_focal is None
    assert {s.checkpoint for s in TASKS.values()} == {f"facebook/VLM3-{n}" for n in TASK_NAMES}


def test_parameters_launch_arguments_and_defaults_are_generated_from_it() -> None:
    assert SPECS["enabled_tasks"].default == list(TASK_NAMES)
    launch = {a.name: a for a in LAUNCH_ARGS}
    defaults = PipelineSettings()
    for name, s in TASKS.items():
        assert SPECS[s.model_param].default == ""
        assert SPECS[s.tokens_param].default == s.max_new_tokens == defaults.max_new_tokens[name]
        assert launch[s.launch_arg].parameter == s.model_param
        assert defaults.unify[name] == s.unify
    assert launch["enabled_tasks"].default == ""  # the params file's value unless given


def test_one_name_per_task() -> None:
    """No parameter, launch argument or service carries another name for a task."""
    names = [*SPECS, *(a.name for a in LAUNCH_ARGS), *(s.service for s in TASKS.values())]
    assert not [n for n in names if "spatial" in n], "the object task has one name: object"
    assert [s.service for s in TASKS.values()] == ["get_depth", "estimate_pose", "find_correspondence",
                                                   "object_query"]


def test_unknown_task_is_named() -> None:
    with pytest.raises(KeyError, match="unknown task 'fly'"):
        spec("fly")
