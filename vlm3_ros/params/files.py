"""Parameter values from where users write them: ROS 2 parameter files (the YAML that
``--params-file`` takes) and ``name:=value`` overrides (parameter names, or the launch
arguments' names such as ``depth_model:=/models/VLM3-depth``).

Used by ``vlm3-ros eval`` and the bring-up so an evaluation reads the same file the robot runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vlm3_ros.params.config import ConfigError, typed_value
from vlm3_ros.params.launch_args import LAUNCH_ARGS
from vlm3_ros.params.table import NODE_NAME, SPECS


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _section_rank(key: str, node_name: str) -> int | None:
    """Which sections of a params file apply to the node, wildcards first (lower rank applies
    first, so the node's own section wins), as ROS 2 resolves them."""
    k = key.rstrip("/")
    if k in ("/**", "**"):
        return 0
    if k.endswith("/**/" + node_name) or k == "/**/" + node_name:
        return 1
    if k == node_name or k == "/" + node_name or k.endswith("/" + node_name):
        return 2
    return None


def read_params_file(path: str | Path, node_name: str = NODE_NAME) -> dict[str, Any]:
    """The parameters a ROS 2 params file gives ``node_name`` (nested keys joined with '.')."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"params file {str(p)!r} cannot be read: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"params file {str(p)!r} must map node names to 'ros__parameters'")
    sections = sorted((rank, key) for key in data if (rank := _section_rank(str(key), node_name)) is not None)
    if not sections:
        raise ConfigError(f"params file {str(p)!r} has no section for node {node_name!r} (it has "
                          f"{sorted(map(str, data))}); write '{node_name}:' then 'ros__parameters:'")
    out: dict[str, Any] = {}
    for _, key in sections:
        body = data[key] or {}
        params = body.get("ros__parameters") if isinstance(body, dict) else None
        if not isinstance(params, dict):
            raise ConfigError(f"params file {str(p)!r}: section {key!r} has no 'ros__parameters' mapping")
        out.update(_flatten(params))
    return out


_LAUNCH_TO_PARAM = {a.name: a.parameter for a in LAUNCH_ARGS if a.parameter}


def parse_override(item: str) -> tuple[str, Any]:
    """``name:=value`` -> (parameter name, typed value); launch-argument names are accepted too."""
    if ":=" not in item:
        raise ConfigError(f"expected NAME:=VALUE, got {item!r}")
    name, text = item.split(":=", 1)
    name = _LAUNCH_TO_PARAM.get(name, name)
    if name not in SPECS:
        raise ConfigError(f"unknown parameter or launch argument {name!r} in {item!r}")
    return name, typed_value(name, text)


def load_values(params_file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                node_name: str = NODE_NAME) -> dict[str, Any]:
    """Parameter values: the params file's, then each override in order (last one wins)."""
    values = read_params_file(params_file, node_name) if params_file else {}
    for item in overrides:
        name, value = parse_override(item)
        values[name] = value
    return values
