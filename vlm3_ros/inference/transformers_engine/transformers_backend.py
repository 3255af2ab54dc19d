"""A VLM3 checkpoint served through transformers (backend kind ``transformers``).

``mode="engine"`` (default): the shared-image-prefix engine (:mod:`.prefix_engine`).
``mode="naive"``: one full ``generate`` per question through the processor, the reference that
the engine is tested and benchmarked against.

``image_processing="device"`` (default): the checkpoint processor's image arithmetic on the model's
device from the uint8 image (:mod:`vlm3_ros.inference.image_processing`); ``"pil"``: the
checkpoint's own processor, the reference. Stages (image, prefill, decode) are booked to the
running request's clock (:mod:`vlm3_ros.runtime.timing`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from vlm3_ros.contract.prompts import PromptError, check_user_text
from vlm3_ros.contract.question import Answer, BackendError, Question
from vlm3_ros.inference import memory
from vlm3_ros.inference.image_processing import DeviceImageProcessor, ProcessorParams, expand_image_tokens
from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
from vlm3_ros.inference.transformers_engine.model_loading import REGISTRY, load_processor
from vlm3_ros.inference.transformers_engine.stopping_rules import AnswerEnd, HoldEos, closer_mask
from vlm3_ros.runtime import cancel
from vlm3_ros.runtime.timing import stage

LOG = logging.getLogger(__name__)

# question_prefill_s / answer_steps_s / answer_steps: the engine's own greedy loop splits its decode
# time into the questions' prefill (first forward) and the answer steps after it;
# shared_question_tokens: the questions' common leading tokens prefilled once per group;
# static_steps / graph_*: answer steps with static shapes, and their CUDA graphs (decode_graph.py);
# compiled_*, recompiles, warmup_s: the compiled answer step (compiled_step.py); configure_s: this
# backend's start-up (model load, processor, compile warm-up)
STAT_KEYS: dict[str, Any] = {
    "prefills": 0, "generate_calls": 0, "decode_steps": 0, "questions": 0, "prefix_hits": 0, "prefix_misses": 0,
    "prefix_evictions": 0, "prefix_cache_kib": 0.0, "question_prefill_s": 0.0, "answer_steps_s": 0.0,
    "answer_steps": 0, "static_steps": 0, "graph_captures": 0, "graph_replays": 0, "graph_failures": 0,
    "graph_reuses": 0, "padding_rows": 0, "graph_pool_kib": 0.0, "shared_question_tokens": 0,
    "compiled_graphs": 0, "compiled_steps": 0, "recompiles": 0, "warmup_s": 0.0, "configure_s": 0.0}


class TransformersBackend:
    """A VLM3 checkpoint on a local device (CPU, CUDA GPU, Jetson)."""

    def __init__(self, cfg: TransformersConfig, model: Any = None, processor: Any = None) -> None:
        """Load ``cfg.path``; or, with ``model`` and ``processor`` given (benchmarks of a
        random-weight architecture), use those objects and skip the registry."""
        import torch

        t0 = time.perf_counter()
        self.cfg = cfg
        self.name = f"transformers[{cfg.mode}]:{cfg.path}"
        self._key: tuple | None = None
        if model is not None:
            self.model, self.processor = model, processor
        else:
            cfg.validate()
            self.model, self._key = REGISTRY.acquire(cfg)
            try:
                self.processor = load_processor(cfg.path, cfg.max_pixels, cfg.min_pixels)
            except Exception as e:
                REGISTRY.release(self._key)
                raise BackendError(f"cannot load the processor of {cfg.path!r}: {e}") from e
        tok = self.tokenizer = self.processor.tokenizer
        self.device = next(self.model.parameters()).device
        self.image_token_id = int(self.model.config.image_token_id)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids("<|endoftext|>")
        eos = {tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")}
        if tok.eos_token_id is not None:
            eos.add(tok.eos_token_id)
        self.eos_ids = sorted(i for i in eos if i is not None and i >= 0)
        self._closed = False
        self._closer_mask: Any = None
        self.stats = dict(STAT_KEYS)
        self.sync = torch.cuda.synchronize if self.device.type == "cuda" else None
        self.image_processor = self._device_image_processor()
        self.engine: Any = None
        if cfg.mode == "engine":
            from vlm3_ros.inference.transformers_engine.compiled_step import StepCompiler
            from vlm3_ros.inference.transformers_engine.prefix_engine import SharedPrefixEngine

            if cfg.compile_step and cfg.prefix_kernel == "flex" and self.device.type != "cuda":
                # inductor's CPU FlexAttention has no lowering for a block mask that reads tensors
                self.close()
                raise BackendError("prefix_kernel flex with compile_step needs a CUDA device")
            shared = cfg.shared_prefix_attention and self._use_shared_prefix_attention()
            compiled = StepCompiler(self.stats) if cfg.compile_step and shared and cfg.decode_graph != "off" else None
            self.engine = SharedPrefixEngine(self, shared, compiled)
            if compiled is not None:
                compiled.warm_up(self, cfg.warmup_rows)
        self.stats["configure_s"] = round(time.perf_counter() - t0, 3)
        if self.device.type == "cpu":
            # a long-running CPU model with a prefix cache otherwise grows RSS far beyond what it keeps
            memory.return_large_buffers()

    # ------------------------------------------------------------------ public
    def answer(self, questions: Sequence[Question]) -> list[Answer]:
        if self._closed:
            raise BackendError("backend is closed")
        for q in questions:  # defence in depth: the task layer rejects this before it gets here
            try:  # (the contract's own prompts carry <think> markup: only special tokens here)
                check_user_text(q.text, "a question's text", markup=False)
            except PromptError as e:
                raise BackendError(str(e)) from None
        if self.engine is None:
            out_naive = []
            for q in questions:
                cancel.check()  # batch boundary: one question
                out_naive.append(self.naive_answer(q))
            return out_naive
        out: list[Answer | None] = [None] * len(questions)
        groups: dict[Hashable, list[int]] = {}
        for i, q in enumerate(questions):
            groups.setdefault(q.images_key, []).append(i)
        for idxs in groups.values():
            answers = self.engine.answer_group([questions[i] for i in idxs])
            for i, a in zip(idxs, answers, strict=True):
                out[i] = a
        return [a for a in out if a is not None]

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the checkpoint's processor resizes a ``width`` x ``height`` image to: its
        patch grid (both image paths use it). The pipeline renders straight at it when resampling once."""
        params = (self.image_processor.params if self.image_processor is not None
                  else ProcessorParams.of(self.processor.image_processor))
        gh, gw = params.grid_size(height, width)
        return gw, gh

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._key is not None:
                REGISTRY.release(self._key)
            self.model = None
            if self.engine is not None:
                self.engine.clear()
            self.stats["graph_pool_kib"] = 0.0

    def chat_text(self, q: Question) -> str:
        content: list[dict] = [{"type": "image"} for _ in q.images]
        content.append({"type": "text", "text": q.text})
        return self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                  tokenize=False)

    def inputs(self, text: str, images: tuple[np.ndarray, ...]) -> dict[str, Any]:
        """input_ids, attention_mask, mm_token_type_ids, pixel_values, image_grid_thw on the device:
        the checkpoint's processor (pil), or the same arithmetic on the device + the tokenizer."""
        if self.image_processor is None or not images:
            with stage("image", self.sync):
                out = self.processor(text=[text], images=self._pil(images) or None, return_tensors="pt")
                return dict(out.to(self.device))
        with stage("image", self.sync):
            pixel_values, grid = self.image_processor(images)
        merge = self.image_processor.params.merge_size
        enc = self.tokenizer([expand_image_tokens(text, grid.tolist(), merge)], return_tensors="pt")
        ids = enc["input_ids"].to(self.device)
        return {"input_ids": ids, "attention_mask": enc["attention_mask"].to(self.device),
                "mm_token_type_ids": (ids == self.image_token_id).to(ids.dtype),
                "pixel_values": pixel_values, "image_grid_thw": grid}

    def stop_for(self, prompt_len: int, qs: Sequence[Question]) -> AnswerEnd | None:
        """The stopping rule of a batch whose prompts are ``prompt_len`` long (None: none asks for one)."""
        if not any(q.answer_end for q in qs):
            return None
        if self._closer_mask is None:
            vocab = int(self.model.config.get_text_config().vocab_size)
            self._closer_mask = closer_mask(self.tokenizer, vocab, self.device)
        return AnswerEnd(self.tokenizer, self._closer_mask, prompt_len, [q.answer_end for q in qs])

    def gen_kwargs(self, max_new_tokens: int, prompt_len: int, qs: Sequence[Question]) -> dict[str, Any]:
        """transformers ``generate``'s arguments for greedy answers to ``qs``."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "temperature": None,
                              "top_p": None, "top_k": None, "eos_token_id": self.eos_ids, "pad_token_id": self.pad_id}
        if self.cfg.min_new_tokens:   # forced lengths (benchmarks) never stop early
            kw["logits_processor"] = LogitsProcessorList(
                [HoldEos(self.eos_ids, prompt_len, min(self.cfg.min_new_tokens, max_new_tokens))])
        elif (stop := self.stop_for(prompt_len, qs)) is not None:
            kw["stopping_criteria"] = StoppingCriteriaList([stop])
        return kw

    def decode_answer(self, new_tokens: Any, limit: int) -> tuple[str, int]:
        """The answer text of a row's new tokens (up to ``limit``, ending at end of turn) and its length."""
        toks = new_tokens.tolist()[:limit]
        n = len(toks)
        for k, t in enumerate(toks):
            if t in self.eos_ids:
                n = k
                break
        return self.tokenizer.decode(toks[:n], skip_special_tokens=True), n

    def naive_answer(self, q: Question) -> Answer:
        """The reference: one full ``generate`` over image and question."""
        import torch

        inputs = self.inputs(self.chat_text(q), q.images)
        self.model.model.rope_deltas = None
        # naive: vision encode and prefill happen inside generate, booked as decode
        with torch.inference_mode(), stage("decode"):
            out = self.model.generate(**inputs, **self.gen_kwargs(q.max_new_tokens, inputs["input_ids"].shape[1], [q]))
        p = inputs["input_ids"].shape[1]
        text, n = self.decode_answer(out[0, p:], q.max_new_tokens)
        self.stats["generate_calls"] += 1
        self.stats["decode_steps"] += out.shape[1] - p
        self.stats["questions"] += 1
        return Answer(text=text, prompt_tokens=int(p), generated_tokens=n)

    # ------------------------------------------------------------------ helpers
    def _use_shared_prefix_attention(self) -> bool:
        """Route the text layers' attention through vlm3_ros.inference.shared_prefix (layers
        without a shared-prefix cache run SDPA as before, so other users of the model are unchanged)."""
        try:
            from vlm3_ros.inference import shared_prefix

            self.model.set_attn_implementation({"text_config": shared_prefix.NAME})
            return True
        except (AttributeError, ImportError, TypeError, ValueError) as e:
            LOG.warning("shared-prefix attention unavailable (%s); the engine replicates the prefix KV per row", e)
            return False

    def _device_image_processor(self) -> DeviceImageProcessor | None:
        if self.cfg.image_processing != "device":
            return None
        try:
            return DeviceImageProcessor(ProcessorParams.of(self.processor.image_processor), self.device)
        except (AttributeError, TypeError, ValueError) as e:
            LOG.warning("image_processing=device unavailable for %s (%s); using the checkpoint's processor (pil)",
                        self.cfg.path, e)
            return None

    def _pil(self, images: tuple[np.ndarray, ...]) -> list[Any]:
        from PIL import Image

        return [Image.fromarray(np.ascontiguousarray(im)) for im in images]
