"""The supervised fine-tuning sample: one question of one task on unified images, with the
contract's answer, as a JSONL line in the conversational vision layout.

A line holds ``messages`` (a user turn of typed content: one ``{"type": "image"}`` per image, then
the text; an assistant turn with the answer) and ``images`` (paths relative to the JSONL's folder,
in prompt order): the layout of TRL's vision SFT datasets and of transformers'
``apply_chat_template`` (checked against the latter by the tests). The other keys (task, split,
bag, stamps, truth) are vlm3_ros's own; trainers that do not know them ignore them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "val")


class SampleError(ValueError):
    """A sample file or line cannot be used (the message says which and why)."""


@dataclass(frozen=True)
class Sample:
    """One question with its answer. ``images`` are paths relative to the sample file's folder."""

    task: str
    split: str
    images: tuple[str, ...]
    prompt: str
    answer: str
    bag: str = ""
    stamps: tuple[int, ...] = ()
    truth: dict[str, Any] = field(default_factory=dict)   # the ground truth behind the answer, unrounded

    def messages(self) -> list[dict[str, Any]]:
        user: list[dict[str, Any]] = [{"type": "image"} for _ in self.images]
        user.append({"type": "text", "text": self.prompt})
        return [{"role": "user", "content": user},
                {"role": "assistant", "content": [{"type": "text", "text": self.answer}]}]

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.messages(), "images": list(self.images), "task": self.task, "split": self.split,
                "bag": self.bag, "stamps": list(self.stamps), "truth": self.truth}

    @staticmethod
    def from_json(d: dict[str, Any], where: str = "") -> Sample:
        try:
            user, assistant = d["messages"][0], d["messages"][1]
            texts = [c["text"] for c in user["content"] if c.get("type") == "text"]
            n_images = sum(1 for c in user["content"] if c.get("type") == "image")
            answer = "".join(c["text"] for c in assistant["content"] if c.get("type") == "text")
            images = tuple(d["images"])
        except (KeyError, IndexError, TypeError) as e:
            raise SampleError(f"{where}: not a messages + images sample ({e!r} missing)") from None
        if user.get("role") != "user" or assistant.get("role") != "assistant":
            raise SampleError(f"{where}: expected a user turn then an assistant turn")
        if n_images != len(images) or len(texts) != 1:
            raise SampleError(f"{where}: {n_images} image slots for {len(images)} images, {len(texts)} texts")
        return Sample(task=str(d.get("task", "")), split=str(d.get("split", "")), images=images, prompt=texts[0],
                      answer=answer, bag=str(d.get("bag", "")), stamps=tuple(d.get("stamps", ())),
                      truth=dict(d.get("truth", {})))


def write_jsonl(path: Path, samples: list[Sample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for s in samples:
            f.write(json.dumps(s.to_json(), ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[Sample]:
    """All samples of a JSONL file; a bad line raises :class:`SampleError` naming it."""
    if not path.is_file():
        raise SampleError(f"{path}: no such sample file (make one with vlm3-ros export-sft BAG --out DIR)")
    return list(_lines(path))


def _lines(path: Path) -> Iterator[Sample]:
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise SampleError(f"{path}:{i}: not JSON ({e})") from None
            yield Sample.from_json(d, f"{path}:{i}")


def split_files(data_dir: Path) -> dict[str, Path]:
    """The JSONL file of each split in an export directory."""
    return {s: data_dir / f"{s}.jsonl" for s in SPLITS}
