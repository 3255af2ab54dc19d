"""The fine-tuning loss on a frame group: image prefix once, question rows against it, logits only
at answer positions.

A plain trainer feeds every question as a whole conversation: the ~1.1k image tokens of the
prefix go through the vision tower and every text layer once per question, and the LM head
computes full-vocabulary logits (151,936 wide) at every position. Here the prefix runs once
(batch 1) into a KV cache; the rows (B questions, right-padded) attend to that one prefix through
the serving engine's shared-prefix attention (:mod:`vlm3_ros.inference.shared_prefix`, no per-row
copy), and the LM head is applied to the hidden states of the answer positions alone. Gradients
flow through the prefix's keys and values (nothing is detached), so the loss and its gradient are
those of the plain per-question forward (tested to float precision).
"""

from __future__ import annotations

from typing import Any

from vlm3_ros.training.batches import IGNORE


def core_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers already injected in it)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def enable_shared_prefix(model: Any) -> None:
    """Route the text layers' attention through the shared-prefix function (other layers, the
    prefix and the vision tower, run SDPA as before)."""
    from vlm3_ros.inference import shared_prefix

    core_model(model).set_attn_implementation({"text_config": shared_prefix.NAME})


class FrozenVisionFeatures:
    """The vision tower's output per image set, computed once per run: with the tower frozen its
    output for an image never changes, so later steps on the image skip it."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._features: dict[Any, Any] = {}

    def get(self, inner: Any, key: Any, pixel_values: Any, grid: Any) -> Any:
        import torch

        hit = self._features.get(key)
        if hit is None:
            with torch.no_grad():
                hit = inner.get_image_features(pixel_values, grid, return_dict=True)
            if len(self._features) >= self.max_entries:
                self._features.pop(next(iter(self._features)))
            self._features[key] = hit
        return hit


def vision_frozen(model: Any) -> bool:
    return not any(p.requires_grad for p in core_model(model).model.visual.parameters())


def answer_loss(model: Any, batch: dict[str, Any], vision: FrozenVisionFeatures | None = None) -> Any:
    """Mean cross-entropy over the answer tokens of a :class:`~vlm3_ros.training.batches.BatchBuilder`
    batch (the model must have had :func:`enable_shared_prefix`). ``vision``: reuse the frozen
    vision tower's features of the batch's images (``batch["image_key"]``)."""
    import torch
    from transformers import DynamicCache

    from vlm3_ros.inference import shared_prefix

    core = core_model(model)
    inner = core.model
    cache = DynamicCache(config=core.config)
    image: dict[str, Any] = {"pixel_values": batch["pixel_values"]}
    if vision is not None and "image_key" in batch:
        image = {"mm_encoder_outputs": {"image": vision.get(inner, batch["image_key"], batch["pixel_values"],
                                                            batch["image_grid_thw"])}}
    inner.rope_deltas = None      # the prefix sets the image's mRoPE offset afresh (see prefix_engine.py)
    inner(input_ids=batch["prefix_input_ids"], attention_mask=batch["prefix_attention_mask"],
          mm_token_type_ids=batch["mm_token_type_ids"], image_grid_thw=batch["image_grid_thw"],
          past_key_values=cache, use_cache=True, **image)
    rows = shared_prefix.shared_prefix_cache(cache, core.config)
    with shared_prefix.active(rows):
        hidden = inner(input_ids=batch["input_ids"], past_key_values=rows, use_cache=True).last_hidden_state
    targets = batch["labels"]
    at = targets != IGNORE
    logits = core.lm_head(hidden[at])
    return torch.nn.functional.cross_entropy(logits.float(), targets[at])


def plain_loss(model: Any, sequences: list[dict[str, Any]]) -> Any:
    """The reference: each question as a whole conversation through the model's own forward,
    full-vocabulary logits at every position, mean over all answer tokens. Used by the tests and
    ``bench/finetune_step.py`` (the naive way)."""
    import torch

    core = core_model(model)
    total, count = 0.0, 0
    for seq in sequences:
        core.model.rope_deltas = None
        logits = core(input_ids=seq["input_ids"], attention_mask=seq["attention_mask"],
                      mm_token_type_ids=seq["mm_token_type_ids"], pixel_values=seq["pixel_values"],
                      image_grid_thw=seq["image_grid_thw"]).logits
        labels = seq["labels"]
        at = labels != IGNORE
        total = total + torch.nn.functional.cross_entropy(logits[at].float(), labels[at], reduction="sum")
        count += int(at.sum())
    return total / max(count, 1)
