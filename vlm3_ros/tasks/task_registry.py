"""The one list of tasks. Parameters, launch arguments, ROS services, ``enabled_tasks`` and the
per-task defaults are all generated from it; a new task adds its module's SPEC here."""

from __future__ import annotations

from vlm3_ros.tasks import corr_task, depth_task, object_task, pose_task
from vlm3_ros.tasks.spec import TaskSpec

TASKS: dict[str, TaskSpec] = {s.name: s for s in (depth_task.SPEC, pose_task.SPEC, corr_task.SPEC, object_task.SPEC)}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def spec(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; the tasks are {list(TASK_NAMES)}") from None
