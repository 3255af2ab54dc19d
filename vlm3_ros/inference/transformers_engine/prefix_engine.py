"""The shared-image-prefix engine: per image set, one vision encode + prefix prefill over
everything up to the last ``<|vision_end|>``; the questions on those images then run in batches
on that prefix, padded BETWEEN prefix and question (the prefix must sit at the same cache
positions in every row), with decode steps shared across the batch. The questions' common leading
tokens (same task, same wording up to the coordinates) join the prefix once per group.

The mRoPE trap: Qwen3-VL caches the rotary offset of the last prefilled image on the module
(``model.model.rope_deltas``) and reuses it whenever the KV cache is non-empty. The engine stores
the offset with each prefix and restores it before every forward on that prefix; a stale value
from another image silently shifts positions.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Sequence
from typing import Any

from vlm3_ros.contract.question import Answer, BackendError, Question
from vlm3_ros.inference import decode_graph, shared_prefix
from vlm3_ros.inference.decode_graph import GraphPool
from vlm3_ros.inference.transformers_engine.frame_prefixes import FramePrefixCache, Prefix
from vlm3_ros.inference.transformers_engine.greedy_loop import GreedyLoop, mark
from vlm3_ros.runtime import cancel
from vlm3_ros.runtime.timing import stage


def common_lead_length(token_ids: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all of ``token_ids`` share, leaving every sequence at least its
    last token (whose logits give its first answer token); 0 for fewer than two sequences."""
    if len(token_ids) < 2:
        return 0
    first, n = token_ids[0], min(len(s) for s in token_ids) - 1
    k = 0
    while k < n and all(s[k] == first[k] for s in token_ids):
        k += 1
    return k


class SharedPrefixEngine:
    """The engine of one :class:`.transformers_backend.TransformersBackend` (``backend``: its
    model, tokenizer, prompt rendering, model inputs, stats and configuration)."""

    def __init__(self, backend: Any, shared: bool, compiled: Any = None) -> None:
        self.b = backend
        self.cfg = backend.cfg
        self.shared = shared   # rows share one prefix KV (shared_prefix.py); False: replicated per row
        self.prefixes = FramePrefixCache(int(self.cfg.prefix_cache_mb * 2**20), backend.stats)
        # captured answer steps kept for later batches of the same shapes (decode_graph.GraphPool)
        self.graphs = GraphPool(self.cfg.graph_slots)
        self.greedy = GreedyLoop(backend.model, self.cfg, backend.stats, backend.eos_ids, backend.pad_id,
                                 backend.stop_for, self.graphs, shared, backend.sync, compiled)

    def keeps_graphs(self) -> bool:
        """Answer steps replayed as kept graphs on this device (decode_graph.GraphPool)."""
        return (self.shared and self.cfg.greedy_loop and self.cfg.decode_graph == "cuda"
                and self.cfg.graph_slots > 0 and decode_graph.graph_factory(self.b.device) is not None)

    def prefill(self, q: Question) -> tuple[Prefix, str]:
        """Encode the images and prefill everything up to the last <|vision_end|>."""
        import torch
        from transformers import DynamicCache

        b = self.b
        text = b.chat_text(q)
        cut = text.rfind("<|vision_end|>")
        if cut < 0:
            raise BackendError("engine mode needs at least one image in the prompt")
        prefix_text = text[:cut + len("<|vision_end|>")]
        inputs = b.inputs(prefix_text, q.images)
        ids = inputs["input_ids"]
        cache = DynamicCache(config=b.model.config)
        b.model.model.rope_deltas = None
        with torch.inference_mode(), stage("prefill", b.sync), mark("image_prefix"):
            b.model(input_ids=ids, attention_mask=inputs["attention_mask"],
                    mm_token_type_ids=inputs["mm_token_type_ids"], pixel_values=inputs["pixel_values"],
                    image_grid_thw=inputs["image_grid_thw"], past_key_values=cache, use_cache=True, logits_to_keep=1)
        b.stats["prefills"] += 1
        grid = inputs["image_grid_thw"]
        merge = int(getattr(b.processor.image_processor, "merge_size", 2))  # same in both image paths
        image_tokens = tuple(int(g.prod()) // merge**2 for g in grid)
        return Prefix(key=q.images_key, ids=ids, grid_thw=grid, cache=cache,
                      rope_deltas=b.model.model.rope_deltas.clone(), image_tokens=image_tokens), prefix_text

    def suffix_ids(self, q: Question, prefix_text: str) -> list[int]:
        """Token ids after the shared prefix. The prefix ends in a special token, so BPE cannot
        merge across the cut and prefix + suffix tokenises exactly like the whole text."""
        text = self.b.chat_text(q)
        if not text.startswith(prefix_text):
            raise BackendError("questions grouped under one images_key render different image prefixes")
        return self.b.tokenizer(text[len(prefix_text):], add_special_tokens=False)["input_ids"]

    def cached_prefill(self, q: Question) -> tuple[Prefix, str]:
        """The prefilled prefix of ``q``'s images: from the frame prefix cache when the same images
        were prefilled before, else prefilled now and kept. Repeated service calls, the
        sparse-depth producer and VO on one frame then pay the image once."""
        hit = self.prefixes.get(q.images_key, q.images, self.b.chat_text(q))
        if hit is not None:
            return hit
        prefix, prefix_text = self.prefill(q)
        self.prefixes.put(prefix, prefix_text, q.images)
        return prefix, prefix_text

    def common_lead(self, prefix: Prefix, suffixes: list[list[int]]) -> tuple[Prefix, list[list[int]]]:
        """The group's questions' common leading tokens (the depth prompt's "Given this image, how
        far is the point at coordinates (") prefilled once, at batch 1, on a copy of the image
        prefix: the rows then start after them. Their keys and values are the same in every row
        (causal attention: a token sees only what precedes it), so this is the same computation as
        per row. Each row keeps at least its last token, whose logits give its first answer token.
        The split is on token ids, so each row's tokens are exactly its own."""
        k = common_lead_length(suffixes) if self.cfg.shared_question_lead else 0
        if k == 0:
            return prefix, suffixes
        import torch

        b = self.b
        P = prefix.ids.shape[1]
        lead = torch.tensor([suffixes[0][:k]], dtype=torch.long, device=b.device)
        cache = copy.deepcopy(prefix.cache)   # the frame prefix cache keeps the image prefix alone
        # positions continue the prefix's, plus the image's rope offset, as in the greedy loop
        pos = torch.arange(P, P + k, device=b.device)[None] + prefix.rope_deltas
        b.model.model.rope_deltas = prefix.rope_deltas
        t0 = time.perf_counter()
        mask = torch.ones((1, P + k), dtype=torch.long, device=b.device)
        with torch.inference_mode(), mark("question_lead"):
            b.model.model(input_ids=lead, attention_mask=mask, position_ids=pos[None], past_key_values=cache,
                          use_cache=True)
        if b.sync is not None:
            b.sync()
        b.stats["question_prefill_s"] += time.perf_counter() - t0
        b.stats["shared_question_tokens"] += k
        return (Prefix(key=prefix.key, ids=torch.cat([prefix.ids, lead], dim=1), grid_thw=prefix.grid_thw,
                       cache=cache, rope_deltas=prefix.rope_deltas, image_tokens=prefix.image_tokens),
                [s[k:] for s in suffixes])

    def _rows(self, prefix: Prefix, suffixes: Sequence[Sequence[int]], L: int) -> tuple[Any, Any]:
        """The batch's token ids and 2D attention mask: ``[prefix][padding][question]`` per row."""
        import torch

        device, P = self.b.device, prefix.ids.shape[1]
        ids = torch.full((len(suffixes), P + L), self.b.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(suffixes), P + L), dtype=torch.long, device=device)
        ids[:, :P] = prefix.ids[0]
        mask[:, :P] = 1
        for i, s in enumerate(suffixes):
            ids[i, P + L - len(s):] = torch.tensor(s, dtype=torch.long, device=device)
            mask[i, P + L - len(s):] = 1
        return ids, mask

    def _batch_cache(self, prefix: Prefix, own_capacity: int, rows: int) -> tuple[Any, Any]:
        """The batch's cache over the prefix, and the context the attention reads it in."""
        if self.shared:
            # the rows' own KV (padding + question + answer) preallocated once per batch
            cache = shared_prefix.shared_prefix_cache(prefix.cache, self.b.model.config, own_capacity,
                                                      self.cfg.prefix_kernel)
            return cache, shared_prefix.active(cache)
        cache = copy.deepcopy(prefix.cache)
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        return cache, contextlib.nullcontext()

    def answer_group(self, qs: list[Question]) -> list[Answer]:
        """Answers to questions that share one image set, in order."""
        import torch

        b = self.b
        prefix, prefix_text = self.cached_prefill(qs[0])
        answers: list[Answer] = []
        bs = self.cfg.batch_size
        # decode: per batch, the suffix tokens, the batch's cache over the prefix and the decode loop
        with stage("decode", b.sync):
            own = [self.suffix_ids(q, prefix_text) for q in qs]
            for start in range(0, len(qs), bs):
                cancel.check()  # batch boundary: stop here when the caller gave up or the node stops
                if start == 0:   # after the first check: a cancelled job prefills nothing
                    prefix, own = self.common_lead(prefix, own)
                P = prefix.ids.shape[1]
                batch, suffixes = qs[start:start + bs], own[start:start + bs]
                L = max(len(s) for s in suffixes)
                n = len(batch)   # the batch's own questions; padding rows after them are dropped
                max_new = max(q.max_new_tokens for q in batch)
                if self.keeps_graphs():   # padded to run on a kept graph where one fits (decode_graph.ROW_PAD)
                    rows, L = self.graphs.fitting_shape(n, P, L, max_new)
                    batch = batch + [batch[-1]] * (rows - n)
                    suffixes = suffixes + [suffixes[-1]] * (rows - n)
                ids, mask = self._rows(prefix, suffixes, L)
                cache, sharing = self._batch_cache(prefix, L + max_new, len(batch))
                b.model.model.rope_deltas = prefix.rope_deltas
                with torch.inference_mode(), sharing:
                    if self.cfg.greedy_loop:
                        out = self.greedy.run(ids, mask, P, cache, prefix.rope_deltas, max_new, batch)
                    else:
                        mm = (ids == b.image_token_id).to(torch.int)
                        out = b.model.generate(input_ids=ids, attention_mask=mask, mm_token_type_ids=mm,
                                               image_grid_thw=prefix.grid_thw, past_key_values=cache,
                                               **b.gen_kwargs(max_new, P + L, batch))
                b.stats["generate_calls"] += 1
                b.stats["decode_steps"] += out.shape[1] - (P + L)   # positions the batch stepped through
                for i, q in enumerate(batch[:n]):
                    text, made = b.decode_answer(out[i, P + L:], q.max_new_tokens)
                    answers.append(Answer(text=text, prompt_tokens=P + len(suffixes[i]), generated_tokens=made))
                b.stats["questions"] += n
                b.stats["padding_rows"] += len(batch) - n
        return answers

    def clear(self) -> None:
        self.prefixes.clear()
        self.graphs.clear()
