"""Strict parsers (and the matching formatters) for the VLM3 checkpoints' answer formats.

Every parser returns a :class:`Parsed` with either a value or a reason that says what was wrong
(no answer tag, not a number, out of range, only a think block, ...); none raises on model
output. The formatters write the contract's answer strings; tests use them to check that the
text precision of an answer is enough for the geometry built on it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from vlm3_ros.geometry import pose

T = TypeVar("T")

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True)
class Parsed(Generic[T]):
    value: T | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None


def _fail(reason: str) -> Parsed:
    return Parsed(None, reason)


def strip_think(text: str) -> tuple[str, str]:
    """Remove closed <think> blocks; return (rest, reason-if-nothing-usable)."""
    if "<think>" in text and "</think>" not in text:
        return "", "the think block is not closed (generation cut off? raise max_new_tokens)"
    rest = _THINK_BLOCK.sub("", text).strip()
    if not rest and "<think>" in text:
        return "", "the reply holds only a think block, no answer"
    if not rest:
        return "", "empty reply"
    return rest, ""


def _to_float(s: str) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------- depth
def parse_depth(text: str) -> Parsed[float]:
    """``<answer> 2.35 </answer>`` -> 2.35 (metres). Sign is kept: validity is the caller's."""
    rest, reason = strip_think(text)
    if reason:
        return _fail(reason)
    m = _ANSWER_TAG.search(rest)
    if m is None:
        return _fail("no <answer> ... </answer> tag in the reply")
    body = m.group(1).strip()
    v = _to_float(body)
    if v is None:
        nums = re.findall(_NUM, body)
        if len(nums) != 1:
            return _fail(f"the answer {body[:60]!r} is not a single number")
        v = _to_float(nums[0])
        if v is None:
            return _fail(f"the answer {body[:60]!r} is not a finite number")
    return Parsed(v)


def format_depth(metres: float, think: str | None = None) -> str:
    prefix = f"<think> {think} </think>" if think else ""
    return f"{prefix}<answer> {metres:.2f} </answer>"


# ---------------------------------------------------------------- correspondence
_POINT = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")


def parse_point(text: str, lo: float = 0.0, hi: float = 1000.0) -> Parsed[tuple[float, float]]:
    """``(x, y)`` in [lo, hi] (the last pair after any think block)."""
    rest, reason = strip_think(text)
    if reason:
        return _fail(reason)
    found = _POINT.findall(rest)
    if not found:
        return _fail("no '(x, y)' pair in the reply")
    x, y = (_to_float(v) for v in found[-1])
    if x is None or y is None:
        return _fail("the coordinates are not finite numbers")
    if not (lo <= x <= hi and lo <= y <= hi):
        return _fail(f"the point ({x:g}, {y:g}) is outside [{lo:g}, {hi:g}]")
    return Parsed((x, y))


def format_point(x: float, y: float) -> str:
    return f"({round(x)}, {round(y)})"


# ---------------------------------------------------------------- answer end
# Where generation may stop: the reply holds everything its parser reads, so tokens after it
# cannot change the parsed value (depth: the first <answer> tag outside think blocks is the
# answer; point: the contract's reply is one "(x, y)"). Pose and object replies are sentences
# with no closing mark: they run to <|im_end|>.
ANSWER_END_RULES = ("depth", "point")


def answer_complete(text: str, rule: str) -> bool:
    """True when ``text`` (the reply so far) already holds the whole answer under ``rule``."""
    if rule not in ANSWER_END_RULES:
        return False
    if "<think>" in text and text.count("<think>") > text.count("</think>"):
        return False  # inside a think block: a tag or point there is not the answer
    rest = _THINK_BLOCK.sub("", text)
    if rule == "depth":
        return _ANSWER_TAG.search(rest) is not None
    return _POINT.search(rest) is not None


# ---------------------------------------------------------------- pose
_ROT = re.compile(rf"rotation angle\s*[:=]?\s*({_NUM})\s*(?:degrees|deg|°)?", re.IGNORECASE)
_YPR = re.compile(
    rf"yaw\s*[=:]\s*({_NUM})\s*°?\s*,?\s*pitch\s*[=:]\s*({_NUM})\s*°?\s*,?\s*roll\s*[=:]\s*({_NUM})",
    re.IGNORECASE)
_VEC3 = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_DIST = re.compile(rf"({_NUM})\s*(meters|metres|meter|metre|m)\b", re.IGNORECASE)


def parse_rotation_angle(text: str) -> Parsed[float]:
    rest, reason = strip_think(text)
    if reason:
        return _fail(reason)
    m = _ROT.search(rest)
    if m is None:
        return _fail("no 'Rotation angle: N degrees' in the reply")
    v = _to_float(m.group(1))
    if v is None or not 0.0 <= v <= 180.0:
        return _fail(f"rotation angle {m.group(1)} is outside [0, 180] degrees")
    return Parsed(v)


def parse_ypr(text: str) -> Parsed[tuple[float, float, float]]:
    rest, reason = strip_think(text)
    if reason:
        return _fail(reason)
    m = _YPR.search(rest)
    if m is None:
        return _fail("no 'Yaw=..., Pitch=..., Roll=...' in the reply")
    vals = [_to_float(g) for g in m.groups()]
    if any(v is None for v in vals):
        return _fail("yaw/pitch/roll are not finite numbers")
    yaw, pitch, roll = (float(v) for v in vals)  # type: ignore[arg-type]
    if not (-180 <= yaw <= 180 and -90 <= pitch <= 90 and -180 <= roll <= 180):
        return _fail(f"angles out of range: yaw {yaw}, pitch {pitch} (|pitch| <= 90), roll {roll}")
    return Parsed((yaw, pitch, roll))


def parse_direction(text: str, unit_tolerance: float = 0.05) -> Parsed[tuple[float, float, float]]:
    """The unit translation vector; rejected when its norm is not 1 within the text precision."""
    rest, reason = strip_think(text)
    if reason:
        return _fail(reason)
    found = _VEC3.findall(rest)
    if not found:
        return _fail("no unit vector '(x, y, z)' in the reply")
    vals = [_to_float(v) for v in found[-1]]
    if any(v is None for v in vals):
        return _fail("the direction is not three finite numbers")
    x, y, z = (float(v) for v in vals)  # type: ignore[arg-type]
    n = math.sqrt(x * x + y * y + z * z)
    if abs(n - 1.0) > unit_tolerance:
        return _fail(f"the direction ({x:g}, {y:g}, {z:g}) has norm {n:.3f}, not 1")
    return Parsed((x / n, y / n, z / n))


def parse_distance(text: str) -> Parsed[float]:
    rest, reason = strip_think(text)
    if reason:
        return _fail(reason)
    m = _DIST.search(rest)
    if m is None:
        return _fail("no distance in metres in the reply")
    v = _to_float(m.group(1))
    if v is None or v < 0:
        return _fail(f"distance {m.group(1)} is not a non-negative number")
    return Parsed(v)


def format_rotation_angle(deg: float) -> str:
    return f"Rotation angle: {deg:.1f} degrees"


def format_ypr(yaw: float, pitch: float, roll: float) -> str:
    return f"Yaw={yaw:+.1f}°, Pitch={pitch:+.1f}°, Roll={roll:+.1f}°"


def format_direction(x: float, y: float, z: float, word_threshold: float = 0.1) -> str:
    words = []
    for v, neg, pos in ((x, "left", "right"), (y, "up", "down"), (z, "backward", "forward")):
        if abs(v) >= word_threshold:
            words.append(pos if v > 0 else neg)
    desc = ", ".join(words) if words else "barely"
    return f"The camera moves {desc}, unit vector ({x:+.2f}, {y:+.2f}, {z:+.2f})."


def format_distance(metres: float) -> str:
    return f"Translation distance: {metres:.2f} meters"


POSE_KEYS = ("rotation", "ypr", "direction", "distance")


def format_pose_answer(question_key: str, T_1_2: np.ndarray) -> str:
    """The answer to one of the four pose questions (``POSE_KEYS``) from the pose of camera 2 in
    camera 1 (4x4, optical frames): what a ground-truth label or test double writes."""
    R, t = T_1_2[:3, :3], T_1_2[:3, 3]
    if question_key == "rotation":
        return format_rotation_angle(pose.rotation_angle_deg(R))
    if question_key == "ypr":
        return format_ypr(*pose.matrix_to_ypr(R))
    dist = float(np.linalg.norm(t))
    if question_key == "direction":
        u = t / dist if dist > 0 else np.array([0.0, 0.0, 1.0])
        return format_direction(*u)
    if question_key == "distance":
        return format_distance(dist)
    raise ValueError(f"unknown pose question {question_key!r} (one of {POSE_KEYS})")


# ---------------------------------------------------------------- object questions (SpatialRGPT-Bench style)
_UNITS_M = {
    "meters": 1.0, "meter": 1.0, "metres": 1.0, "metre": 1.0, "m": 1.0,
    "centimeters": 0.01, "centimeter": 0.01, "centimetres": 0.01, "centimetre": 0.01, "cm": 0.01,
    "millimeters": 0.001, "millimeter": 0.001, "mm": 0.001,
    "feet": 0.3048, "foot": 0.3048, "ft": 0.3048,
    "inches": 0.0254, "inch": 0.0254, "in": 0.0254,
    "kilometers": 1000.0, "km": 1000.0,
}
_QUANTITY = re.compile(
    rf"({_NUM})\s*(" + "|".join(sorted(map(re.escape, _UNITS_M), key=len, reverse=True)) + r")\b",
    re.IGNORECASE)
_CLOCK = re.compile(r"\b(1[0-2]|[1-9])\s*o'?\s*clock", re.IGNORECASE)
_YES = re.compile(r"^\W*(yes|correct|true|indeed)\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(no|incorrect|false|not)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ObjectAnswer:
    text: str
    quantity: float | None = None
    unit: str = ""
    quantity_m: float | None = None
    clock: int | None = None
    yes: bool | None = None


def parse_object(text: str) -> Parsed[ObjectAnswer]:
    """Free-text object answer -> quantity (+ unit, metres), clock direction, and/or yes/no."""
    rest, reason = strip_think(text)
    if reason:
        return _fail(reason)
    tagged = _ANSWER_TAG.search(rest)
    body = (tagged.group(1) if tagged else rest).strip()
    q = _QUANTITY.search(body)
    quantity = unit = qm = None
    if q is not None:
        quantity = _to_float(q.group(1))
        unit = q.group(2).lower()
        qm = quantity * _UNITS_M[unit] if quantity is not None else None
    c = _CLOCK.search(body)
    yes: bool | None = None
    if _NO.search(body):
        yes = False
    elif _YES.search(body):
        yes = True
    return Parsed(ObjectAnswer(text=body, quantity=quantity, unit=unit or "", quantity_m=qm,
                                clock=int(c.group(1)) if c else None, yes=yes))


def format_object_quantity(kind: str, value_m: float, first: str, second: str = "") -> str:
    """A quantitative object answer (``kind`` one of :data:`vlm3_ros.geometry.regions.KINDS`) naming
    its regions as given (``Region [0]`` in a benchmark answer, the box text in a model's): what
    the ground-truth double replies and the training export labels, in metres with 2 decimals."""
    if kind in ("height_data", "width_data"):
        return f"{first} is {value_m:.2f} meters {'tall' if kind == 'height_data' else 'wide'}."
    how = {"distance_data": "", "vertical_distance_data": " vertically", "horizontal_distance_data": " horizontally"}
    if kind not in how:
        raise ValueError(f"unknown object quantity {kind!r}")
    return f"{first} and {second} are {value_m:.2f} meters apart{how[kind]}."
