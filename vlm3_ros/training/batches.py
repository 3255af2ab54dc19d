"""Samples -> training batches that show each image once: all questions on one image set form a
frame group; a batch is one image prefix plus up to ``rows`` question/answer rows on it.

Tokenisation is the serving engine's (:mod:`vlm3_ros.inference.transformers_engine`): the chat template renders
the user turn with the generation prompt; the prefix is everything up to the last
``<|vision_end|>`` (a special token, so the cut cannot split a BPE merge); a row is the rest of the
prompt followed by the answer and ``<|im_end|>``, tokenised as the model generates it. Targets
are pre-shifted (``targets[t]`` is the token at ``t + 1``) and set only on answer tokens, so the
loss and the logits are computed there alone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlm3_ros.training.sft_samples import Sample

IGNORE = -100
VISION_END = "<|vision_end|>"
END_OF_TURN = "<|im_end|>"


@dataclass(frozen=True)
class FrameGroup:
    """Questions on one image set (paths relative to ``root``)."""

    root: Path
    images: tuple[str, ...]
    samples: tuple[Sample, ...]


def frame_groups(samples: list[Sample], root: Path, rows: int) -> list[FrameGroup]:
    """Group by image set (in first-seen order), each group cut into chunks of ``rows`` questions."""
    by_images: OrderedDict[tuple[str, ...], list[Sample]] = OrderedDict()
    for s in samples:
        by_images.setdefault(s.images, []).append(s)
    out = []
    for images, group in by_images.items():
        for start in range(0, len(group), rows):
            out.append(FrameGroup(root, images, tuple(group[start:start + rows])))
    return out


def user_messages(sample: Sample) -> list[dict[str, Any]]:
    return sample.messages()[:1]


class BatchBuilder:
    """Builds a group's tensors with a checkpoint's processor (the one the node loads)."""

    def __init__(self, processor: Any, max_cached_images: int = 64) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids("<|endoftext|>")
        self._images: OrderedDict[tuple[str, ...], dict[str, Any]] = OrderedDict()
        self._max_cached = max_cached_images

    def prompt_text(self, sample: Sample) -> str:
        return self.processor.apply_chat_template(user_messages(sample), add_generation_prompt=True, tokenize=False)

    def _prefix(self, group: FrameGroup, prefix_text: str) -> dict[str, Any]:
        """The processor's tensors for the image prefix, kept per image set (the image is decoded
        and processed once per run, not once per step)."""
        hit = self._images.get(group.images)
        if hit is not None and hit["text"] == prefix_text:
            self._images.move_to_end(group.images)
            return hit
        from PIL import Image

        pil = [Image.open(group.root / p).convert("RGB") for p in group.images]
        enc = self.processor(text=[prefix_text], images=pil, return_tensors="pt")
        out = {"text": prefix_text, **{k: enc[k] for k in enc}}
        self._images[group.images] = out
        while len(self._images) > self._max_cached:
            self._images.popitem(last=False)
        return out

    def __call__(self, group: FrameGroup) -> dict[str, Any]:
        import torch

        texts = [self.prompt_text(s) for s in group.samples]
        cut = texts[0].rfind(VISION_END)
        if cut < 0:
            raise ValueError("a sample without an image: the frame-group trainer needs the image first")
        prefix_text = texts[0][:cut + len(VISION_END)]
        rows, targets = [], []
        for s, text in zip(group.samples, texts, strict=True):
            if not text.startswith(prefix_text):
                raise ValueError(f"samples on {group.images} render different image prefixes")
            prompt = self.tokenizer(text[len(prefix_text):], add_special_tokens=False)["input_ids"]
            answer = self.tokenizer(s.answer + END_OF_TURN, add_special_tokens=False)["input_ids"]
            ids = prompt + answer
            tgt = [IGNORE] * len(ids)
            # position t predicts token t + 1: the last prompt token predicts the first answer token
            for t in range(len(prompt) - 1, len(ids) - 1):
                tgt[t] = ids[t + 1]
            rows.append(ids)
            targets.append(tgt)
        L = max(len(r) for r in rows)
        ids_t = torch.full((len(rows), L), self.pad_id, dtype=torch.long)
        tgt_t = torch.full((len(rows), L), IGNORE, dtype=torch.long)
        for i, (r, t) in enumerate(zip(rows, targets, strict=True)):
            ids_t[i, :len(r)] = torch.tensor(r)     # right padding: pads come after every real token
            tgt_t[i, :len(t)] = torch.tensor(t)
        prefix = self._prefix(group, prefix_text)
        return {"prefix_input_ids": prefix["input_ids"], "prefix_attention_mask": prefix["attention_mask"],
                "mm_token_type_ids": prefix["mm_token_type_ids"], "pixel_values": prefix["pixel_values"],
                "image_grid_thw": prefix["image_grid_thw"], "input_ids": ids_t, "labels": tgt_t,
                "image_key": group.images}


def full_sequences(builder: BatchBuilder, group: FrameGroup) -> list[dict[str, Any]]:
    """The same samples as whole single-turn conversations (image + prompt + answer), one per
    sample: what a plain trainer feeds and what :func:`vlm3_ros.training.objective.answer_loss`
    is tested and benchmarked against. ``labels`` pre-shifted like :class:`BatchBuilder`'s."""
    import torch

    batch = builder(group)
    P = batch["prefix_input_ids"].shape[1]
    out = []
    for i in range(batch["input_ids"].shape[0]):
        n = int((batch["labels"][i] != IGNORE).nonzero().max()) + 2 if (batch["labels"][i] != IGNORE).any() else 0
        row = batch["input_ids"][i, :n]
        ids = torch.cat([batch["prefix_input_ids"][0], row])[None]
        labels = torch.cat([torch.full((P,), IGNORE, dtype=torch.long), batch["labels"][i, :n]])[None]
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids),
                    "mm_token_type_ids": torch.cat([batch["mm_token_type_ids"][0],
                                                    torch.zeros(n, dtype=batch["mm_token_type_ids"].dtype)])[None],
                    "pixel_values": batch["pixel_values"], "image_grid_thw": batch["image_grid_thw"],
                    "labels": labels})
    return out


def answer_token_count(batch: dict[str, Any]) -> int:
    return int((np.asarray(batch["labels"]) != IGNORE).sum())
