"""The validated, frozen configuration of the node: every value checked against its row of the
parameter table (vlm3_ros.params.table), then their combinations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vlm3_ros.params.table import PARAMS, SPECS
from vlm3_ros.serving.plausibility import extrinsic_tq_problem
from vlm3_ros.tasks.task_registry import TASK_NAMES, TASKS


class ConfigError(ValueError):
    """A parameter value is invalid; the message names the parameter and what to set."""


@dataclass(frozen=True)
class NodeConfig:
    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.values["enabled_tasks"])

    def notes(self) -> list[str]:
        """What the configuration switched off by itself, to log at configure."""
        out = []
        if self.values["vo.enabled"] and "pose" not in self.tasks:
            out.append("visual odometry is off: it needs the pose task (enabled_tasks has no 'pose')")
        if self.values["sparse_depth.rate_hz"] > 0 and "depth" not in self.tasks:
            out.append("~/sparse_depth is off: it needs the depth task (enabled_tasks has no 'depth')")
        return out

    def model_path(self, task: str) -> str:
        return str(self.values[TASKS[task].model_param])


def typed_value(name: str, text: str) -> Any:
    """A command-line string (``-p name:=text``, a launch argument) -> the parameter's type, read as
    YAML like ROS 2 reads ``-p``; a comma-separated string for a list parameter is split."""
    import yaml

    spec = SPECS.get(name)
    if spec is None:
        raise ConfigError(f"unknown parameter {name!r}")
    if isinstance(spec.default, str):
        return text  # a path or topic that YAML would read as a number stays a string
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        value = text
    if isinstance(spec.default, list) and isinstance(value, str):
        value = [t.strip() for t in value.split(",") if t.strip()]
    return value


def validate_value(name: str, value: Any) -> Any:
    """Check one parameter against its spec; return the normalised value or raise ConfigError."""
    spec = SPECS.get(name)
    if spec is None:
        raise ConfigError(f"unknown parameter {name!r}")
    d = spec.default
    if isinstance(d, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
    elif isinstance(d, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    elif isinstance(d, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        value = float(value)
    elif isinstance(d, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
    elif isinstance(d, list):
        value = list(value)
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"{name}={value!r} is below its minimum {spec.min:g}: {spec.description}")
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"{name}={value!r} is above its maximum {spec.max:g}: {spec.description}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{name}={value!r} must be one of {list(spec.choices)}")
    return value


def build_config(values: dict[str, Any], require_backend: bool = True) -> NodeConfig:
    """Validate every parameter and their combinations; return the frozen configuration.
    ``require_backend=False`` skips what only opening the backend needs (checkpoint paths, the
    test double's bag): for tools that read the settings but query a running node."""
    full = {p.name: p.default for p in PARAMS}
    full.update(values)
    out = {name: validate_value(name, v) for name, v in full.items()}
    tasks = out["enabled_tasks"]
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ConfigError(f"enabled_tasks={tasks!r}: each must be one of {list(TASK_NAMES)}, at least one")
    if out["backend"] == "transformers" and require_backend:
        missing = [TASKS[t].model_param for t in tasks if not out[TASKS[t].model_param]]
        if missing:
            raise ConfigError(f"backend 'transformers' needs a checkpoint directory for each enabled task; set "
                              f"{', '.join(missing)} or remove the task from enabled_tasks")
    if out["backend"] == "ground_truth" and not out["ground_truth.bag"] and require_backend:
        raise ConfigError("backend 'ground_truth' (TEST DOUBLE) needs ground_truth.bag")
    if out["backend"] == "remote":
        for name in ("remote.url", *(f"remote.{t}_url" for t in tasks)):
            if (out[name] or name == "remote.url") and not out[name].startswith(("http://", "https://")):
                raise ConfigError(f"{name}={out[name]!r} must start with http:// or https://")
    px = out["sparse_depth.pixels"]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in px):
        raise ConfigError(f"sparse_depth.pixels must hold finite, non-negative pixel coordinates, got {px!r}")
    if out["sparse_depth.pattern"] == "pixels" and (len(px) < 2 or len(px) % 2):
        raise ConfigError("sparse_depth.pixels must be a flat list [x0, y0, x1, y1, ...] with an even length")
    n_sparse = (out["sparse_depth.grid_cols"] * out["sparse_depth.grid_rows"] if out["sparse_depth.pattern"] == "grid"
                else len(out["sparse_depth.pixels"]) // 2)
    if out["sparse_depth.rate_hz"] > 0 and "depth" in tasks and n_sparse > out["max_points_per_request"]:
        raise ConfigError(f"the sparse depth pattern has {n_sparse} points, more than max_points_per_request="
                          f"{out['max_points_per_request']}")
    ext = out["vo.camera_extrinsic"]
    if len(ext) != 7 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in ext):
        raise ConfigError(f"vo.camera_extrinsic must be 7 finite numbers [x, y, z, qx, qy, qz, qw], got {ext!r}")
    qn = sum(v * v for v in ext[3:]) ** 0.5
    if abs(qn - 1.0) > 1e-3:
        raise ConfigError(f"vo.camera_extrinsic quaternion has norm {qn:.4f}; it must be a unit quaternion")
    problem = extrinsic_tq_problem(ext[:3], ext[3:])
    if problem:
        raise ConfigError(f"vo.camera_extrinsic is implausible: {problem}")
    if out["remote.api_key_env"] and not out["remote.api_key_env"].replace("_", "").isalnum():
        raise ConfigError("remote.api_key_env must name an environment variable")
    return NodeConfig(out)
