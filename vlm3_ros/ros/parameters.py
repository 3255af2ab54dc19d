"""The parameter table (vlm3_ros.params.table) as ROS parameters: types, descriptors with ranges
and choices, and validation of every change before it is accepted."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from vlm3_ros.params.config import ConfigError, NodeConfig, build_config, validate_value
from vlm3_ros.params.table import LIVE, PARAMS, ParamSpec


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=spec.description + (f" (one of {', '.join(spec.choices)})"
                                                            if spec.choices else ""), read_only=spec.read_only)
    if spec.min is not None and spec.max is not None and not isinstance(spec.default, bool):
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max),
                                                         step=0.0)]
    return d


def param_type(spec: ParamSpec) -> Parameter.Type:
    d = spec.default
    if isinstance(d, bool):
        return Parameter.Type.BOOL
    if isinstance(d, int):
        return Parameter.Type.INTEGER
    if isinstance(d, float):
        return Parameter.Type.DOUBLE
    if isinstance(d, str):
        return Parameter.Type.STRING
    if isinstance(d, list) and d and isinstance(d[0], float):
        return Parameter.Type.DOUBLE_ARRAY
    return Parameter.Type.STRING_ARRAY


def declare_all(node: Node) -> None:
    for spec in PARAMS:
        node.declare_parameter(spec.name, Parameter(spec.name, param_type(spec), spec.default).value,
                               descriptor(spec))


def read_all(node: Node) -> dict[str, Any]:
    return {spec.name: node.get_parameter(spec.name).value for spec in PARAMS}


def check_changes(params: list[Parameter], current: dict[str, Any], configured: bool) -> tuple[SetParametersResult,
                                                                                           NodeConfig | None]:
    """Validate a change like a configure would (each value, then the whole configuration with it);
    while the node is configured only LIVE parameters may change. Returns the result and, when
    accepted, the configuration to apply (None when nothing is applied live)."""
    changes = {p.name: p.value for p in params}
    try:
        for name, value in changes.items():
            validate_value(name, value)
        candidate = build_config({**current, **changes}, require_backend=False)
    except ConfigError as e:
        return SetParametersResult(successful=False, reason=str(e)), None
    fixed = sorted(n for n in changes if n not in LIVE and changes[n] != current.get(n))
    if configured and fixed:
        return SetParametersResult(successful=False, reason=(
            f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} read at configure: deactivate and clean up the "
            f"node, set it, then configure and activate (these apply live: {', '.join(sorted(LIVE))})")), None
    return SetParametersResult(successful=True), candidate if configured else None
