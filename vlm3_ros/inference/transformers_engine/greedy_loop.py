"""Greedy decoding of a batch of questions on a prefilled prefix: what ``generate`` does for greedy
search (the same forward calls, positions, end-of-turn and stopping rules), without its per-step
float32 copy of the (rows x vocabulary) logits and its logits-processor pass."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from vlm3_ros.contract.question import Question
from vlm3_ros.inference import lm_head
from vlm3_ros.inference.decode_graph import GraphPool, StaticDecode
from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
from vlm3_ros.inference.transformers_engine.stopping_rules import AnswerEnd


def mark(name: str) -> Any:
    """A named range for torch.profiler (``vlm3::<name>``; next to nothing when no profiler
    runs): ``bench/engine_bench.py --profile`` splits a frame's kernel time by these stages."""
    import torch

    return torch.profiler.record_function("vlm3::" + name)


class GreedyLoop:
    """The engine's decode loop for one model. ``stop_for(prompt_len, batch)`` gives the batch's
    :class:`AnswerEnd` (or None); ``compiled`` (:class:`.compiled_step.StepCompiler`, optional)
    wraps the static answer step's forward; ``sync`` waits for the device (None on a CPU)."""

    def __init__(self, model: Any, cfg: TransformersConfig, stats: dict[str, Any], eos_ids: Sequence[int],
                 pad_id: int, stop_for: Callable[[int, Sequence[Question]], AnswerEnd | None],
                 graphs: GraphPool, shared_prefix: bool, sync: Callable[[], None] | None,
                 compiled: Any = None) -> None:
        self.model, self.cfg, self.stats = model, cfg, stats
        self.eos_ids, self.pad_id, self.stop_for = list(eos_ids), pad_id, stop_for
        self.graphs, self.sync, self.compiled = graphs, sync, compiled
        # answer steps with static shapes (and as a CUDA graph): only over the shared prefix's
        # preallocated buffers, set up after the questions' prefill (decode_graph.py)
        self.static_steps = cfg.decode_graph != "off" and shared_prefix and cfg.greedy_loop
        self.shared_prefix = shared_prefix
        # benchmarks on random weights (and the compile warm-up): no end of turn before this many tokens
        self.min_new = cfg.min_new_tokens

    def _forward(self, cache: Any, sliced: bool) -> Callable[[Any, Any, Any], Any]:
        from vlm3_ros.inference.shared_prefix import CACHE_KWARG

        model = self.model
        # the shared-prefix attention reads the cache from its keyword (shared_prefix.CACHE_KWARG)
        extra = {CACHE_KWARG: cache} if self.shared_prefix else {}

        def forward(step_ids: Any, mask: Any, position_ids: Any) -> Any:
            if sliced:
                return model.model(input_ids=step_ids, attention_mask=mask, position_ids=position_ids,
                                   past_key_values=cache, use_cache=True, **extra).last_hidden_state[:, -1, :]
            return model(input_ids=step_ids, attention_mask=mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True, logits_to_keep=1, **extra).logits[:, -1, :]
        return forward

    def run(self, ids: Any, mask: Any, P: int, cache: Any, rope_deltas: Any, max_new: int,
            batch: Sequence[Question]) -> Any:
        """Decode ``batch`` (rows ``ids`` (B, P + L), ``mask`` its 2D attention mask, the first
        ``P`` positions the prefix in ``cache``); returns ``ids`` with the new tokens appended
        (rows that ended padded with pad_id)."""
        import torch

        B, start = ids.shape[0], ids.shape[1]
        # text positions continue from the attention mask (padding sits between prefix and
        # question, so each row's question follows its prefix); Qwen3-VL adds the image's rope offset
        pos = mask.cumsum(-1) - 1
        pos = pos.masked_fill(mask == 0, 1)
        eos = torch.tensor(self.eos_ids, device=ids.device)
        hold = min(self.min_new, max_new)
        stop = self.stop_for(start, batch) if not hold else None
        unfinished = torch.ones(B, dtype=torch.bool, device=ids.device)
        step_ids, step_pos = ids[:, P:], pos[:, P:]
        out = [ids]
        # CPU: the output layer and argmax in vocabulary slices (the same tokens, no full logits)
        head = (lm_head.head_for(self.model.lm_head.weight) if self.cfg.sliced_argmax and ids.device.type == "cpu"
                and lm_head.sliceable(self.model.lm_head) else None)
        sliced = head is not None and head.min_rows <= B
        forward = self._forward(cache, sliced)
        static = None
        t0 = t1 = time.perf_counter()
        for t in range(max_new):
            if t == 1:   # the first forward was the questions' prefill; the answer steps follow
                if self.sync is not None:
                    self.sync()
                t1 = time.perf_counter()
                self.stats["question_prefill_s"] += t1 - t0
            # benchmarks on random weights: no end of turn before the forced length
            banned = eos if t < hold else eos[:0]
            with mark("answer_step" if t else "question_prefill"):
                if static is not None:
                    res = static.step(step_ids, (step_pos + rope_deltas)[None])
                else:
                    res = forward(step_ids, mask, (step_pos + rope_deltas)[None])
                if sliced:
                    nxt = head(res, banned)
                else:
                    # (a CUDA graph's output buffer: the next replay rewrites all of it, so masking in place is safe)
                    logits = res
                    logits[:, banned] = float("-inf")
                    nxt = logits.argmax(-1)
            nxt = torch.where(unfinished, nxt, torch.full_like(nxt, self.pad_id))
            out.append(nxt[:, None])
            unfinished &= ~torch.isin(nxt, eos)
            if stop is not None:
                unfinished &= ~stop(torch.cat(out, dim=1), None)
            if not bool(unfinished.any()):
                break
            if self.static_steps and static is None:   # after the questions' prefill: the answer steps
                step_fn = (self.compiled.wrap(forward, sliced, self.model, cache) if self.compiled is not None
                           else forward)
                static = StaticDecode(step_fn, cache, mask, P, step_ids.shape[1], self.model.dtype,
                                      self.cfg.decode_graph == "cuda", self.stats, self.graphs)
            if static is None:
                mask = torch.cat([mask, mask.new_ones(B, 1)], dim=1)
            step_ids, step_pos = nxt[:, None], step_pos[:, -1:] + 1
        if len(out) > 2:   # answer steps after the prefill: their time and count (docs/engine.md)
            if self.sync is not None:
                self.sync()
            self.stats["answer_steps_s"] += time.perf_counter() - t1
            self.stats["answer_steps"] += len(out) - 2
        else:
            self.stats["question_prefill_s"] += time.perf_counter() - t0
        return torch.cat(out, dim=1)
