"""The prompt strings the released VLM3 checkpoints were trained on, and their rendering.

Defaults are the contract's exact strings (../shared/notes/vlm3-model-contract.md); every
template can be overridden (YAML ``prompts:`` section, see config/perception.yaml). Templates
use ``str.format`` fields: depth {nx} {ny}; corr {x1} {y1}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

DEPTH = (
    "Given this image, how far is the point at coordinates ({nx}, {ny}) from the camera? "
    "The coordinates are in normalised [0, 2000] format relative to image width and height. "
    "Output the thinking process in <think> </think> and final answer (the meter number only, "
    "without the unit) in <answer> </answer> tags."
)
CORR = (
    "Given these two images, what pixel in the second image corresponds to pixel ({x1}, {y1}) "
    "in the first image? Report the answer as (x, y)."
)
CORR_THINK_SUFFIX = (
    ' Please think step by step and follow the format: "<think> [think process] </think>\n\n[answer]".'
)
POSE_ROTATION = (
    "Given these two images captured from different viewpoints, what is the relative rotation "
    "angle (in degrees) between the two camera poses?"
)
POSE_YPR = (
    "Treating the first image as the reference viewpoint, describe the camera's reorientation "
    "needed to reach the second image's viewpoint as yaw, pitch and roll about the first camera's "
    "local axes, applied intrinsically in the order yaw -> pitch -> roll.  Conventions: yaw is "
    "rotation about the vertical (down) axis, positive = turn right; pitch is about the lateral "
    "(right) axis after yaw, positive = look up; roll is about the optical (forward) axis after "
    "yaw and pitch, positive = bank to the right (image content rotates clockwise from the "
    "operator's POV)."
)
POSE_DIRECTION = (
    "Where did the camera move, expressed in the first camera's local frame (X right, Y down, "
    "Z forward)?  Give a qualitative direction and the precise unit direction vector (x, y, z)."
)
POSE_DISTANCE = "Estimate the magnitude of the camera translation between the two viewpoints."
BOX_TEXT = "bounding box region ({x1}, {y1}, {x2}, {y2})"

_REGION_REF = re.compile(r"Region\s*\[\s*(\d+)\s*\]|<mask>")
# Text that Qwen's tokenizer turns into control tokens (<|im_end|>, <|image_pad|>, ...), and markup
# the chat format gives a meaning (<think>, <tool_call>): never allowed in text a user supplies.
SPECIAL_TOKEN_TEXT = re.compile(r"<\|[^<>|]{0,64}\|>")
CHAT_MARKUP = re.compile(r"</?(?:think|tool_call|tool_response)>", re.IGNORECASE)


def check_user_text(text: str, what: str = "the question", markup: bool = True) -> None:
    """Raise PromptError when ``text`` would reach the model as control tokens (prompt injection:
    an end of turn, a system turn, a fake image placeholder) or, with ``markup``, as chat markup."""
    m = SPECIAL_TOKEN_TEXT.search(text) or (CHAT_MARKUP.search(text) if markup else None)
    if m is not None:
        raise PromptError(f"{what} contains {m.group(0)!r}, a control token of the model's chat format; "
                          "remove it")


class PromptError(ValueError):
    """A question cannot be rendered (bad region reference, missing field)."""


@dataclass(frozen=True)
class PromptSet:
    depth: str = DEPTH
    corr: str = CORR
    corr_think_suffix: bool = False
    pose_rotation: str = POSE_ROTATION
    pose_ypr: str = POSE_YPR
    pose_direction: str = POSE_DIRECTION
    pose_distance: str = POSE_DISTANCE
    box_text: str = BOX_TEXT
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_mapping(overrides: dict[str, Any] | None) -> PromptSet:
        base = PromptSet()
        if not overrides:
            return base
        known = {f for f in base.__dataclass_fields__ if f != "extra"}
        unknown = set(overrides) - known
        if unknown:
            raise PromptError(f"unknown prompt keys {sorted(unknown)}; known: {sorted(known)}")
        out = replace(base, **overrides)
        # Fail at start-up, not at the first query, when a template lost its fields.
        out.render_depth(0, 0)
        out.render_corr(0, 0)
        out.render_box((0, 0, 1, 1))
        return out

    def render_depth(self, nx: int, ny: int) -> str:
        try:
            return self.depth.format(nx=int(nx), ny=int(ny))
        except (KeyError, IndexError) as e:
            raise PromptError(f"depth template needs only {{nx}} and {{ny}}: {e}") from e

    def render_corr(self, x1: int, y1: int) -> str:
        try:
            text = self.corr.format(x1=int(x1), y1=int(y1))
        except (KeyError, IndexError) as e:
            raise PromptError(f"corr template needs only {{x1}} and {{y1}}: {e}") from e
        return text + (CORR_THINK_SUFFIX if self.corr_think_suffix else "")

    def pose_questions(self, with_distance: bool = True) -> list[tuple[str, str]]:
        qs = [("rotation", self.pose_rotation), ("ypr", self.pose_ypr),
              ("direction", self.pose_direction)]
        if with_distance:
            qs.append(("distance", self.pose_distance))
        return qs

    def render_box(self, box_norm: tuple[int, int, int, int] | np.ndarray) -> str:
        x1, y1, x2, y2 = (int(v) for v in box_norm)
        return self.box_text.format(x1=x1, y1=y1, x2=x2, y2=y2)

    def box_pattern(self) -> re.Pattern[str]:
        """What :meth:`render_box` writes, as a pattern (the box text found in a rendered prompt)."""
        parts = re.split(r"\{(?:x1|y1|x2|y2)\}", self.box_text)
        return re.compile(r"-?\d+".join(re.escape(p) for p in parts))

    def render_object(self, question: str, boxes_norm: np.ndarray) -> str:
        """Replace ``Region [i]`` (0-based into the boxes) and ``<mask>`` (in order) by box text."""
        boxes_norm = np.asarray(boxes_norm).reshape(-1, 4)
        if not question.strip():
            raise PromptError("the question is empty")
        check_user_text(question)
        mask_counter = iter(range(len(boxes_norm) + 1))
        used: set[int] = set()

        def sub(m: re.Match[str]) -> str:
            idx = int(m.group(1)) if m.group(1) is not None else next(mask_counter)
            if idx >= len(boxes_norm):
                raise PromptError(
                    f"the question refers to region {idx} but the request has {len(boxes_norm)} region(s)")
            used.add(idx)
            return self.render_box(boxes_norm[idx])

        text = _REGION_REF.sub(sub, question)
        if len(boxes_norm) and not used:
            raise PromptError("the question names no region: refer to them as 'Region [0]', 'Region [1]', ...")
        return text
