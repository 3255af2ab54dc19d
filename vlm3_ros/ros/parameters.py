"""The parameter table (vlm3_ros.params.table) as ROS parameters: types, descriptors with ranges
and choices, and validation of every change before it is accepted."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from vlm3_ros.params.config import ConfigError, validate_value
from vlm3_ros.params.table import PARAMS, ParamSpec

# Parameters whose change only takes effect at the next configure (they pick the models).
RECONFIGURE_PREFIXES = ("model.", "backend", "remote.", "ground_truth.")


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


def check_changes(params: list[Parameter]) -> tuple[SetParametersResult, bool]:
    """(result, needs_reconfigure): each value validated against its row of the table."""
    for p in params:
        try:
            validate_value(p.name, p.value)
        except ConfigError as e:
            return SetParametersResult(successful=False, reason=str(e)), False
    return SetParametersResult(successful=True), any(p.name.startswith(RECONFIGURE_PREFIXES) for p in params)
