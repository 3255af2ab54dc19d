"""What defines a task, in one record (see docs/adding-a-task.md)."""

from __future__ import annotations

from dataclasses import dataclass

from vlm3_ros.geometry.unify import UnifyConfig


@dataclass(frozen=True)
class TaskSpec:
    """One VLM3 task. ``name`` is its one name everywhere: parameters (``model.<name>_path``,
    ``max_new_tokens.<name>``), the launch argument (``<name>_model``), ``enabled_tasks``,
    the CLI (``vlm3-ros call <name>``), reports."""

    name: str
    title: str                  # one line for help texts
    checkpoint: str             # the released checkpoint trained for it
    unify: UnifyConfig          # the contract's preprocessing (focal or long-edge unification)
    max_new_tokens: int         # default generation limit per question
    service: str                # ROS service, relative to the node (~/<service>)
    service_type: str           # its interface name in vlm3_ros/srv
    images: int = 1             # images per question
    answer_end: str = ""        # contract.answers.ANSWER_END_RULES: where generation may stop early

    @property
    def model_param(self) -> str:
        return f"model.{self.name}_path"

    @property
    def tokens_param(self) -> str:
        return f"max_new_tokens.{self.name}"

    @property
    def launch_arg(self) -> str:
        return f"{self.name}_model"
