"""VLM3 checkpoints through transformers, with shared-image-prefix batching.

``mode="engine"`` (default): per image set, one vision encode + prefix prefill over everything up
to the last ``<|vision_end|>``; the questions on those images then run in batches against copies
of that prefix cache, padded BETWEEN prefix and question (the prefix must sit at the same cache
positions in every row), with decode steps shared across the batch. The questions' common leading
tokens (same task, same wording up to the coordinates) join the prefix once per group.
``mode="naive"``: one full ``generate`` per question through the processor, the reference that
the engine is tested and benchmarked against.

``image_processing="device"`` (default): the checkpoint processor's image arithmetic on the model's
device from the uint8 image (:mod:`vlm3_ros.inference.image_processing`); ``"pil"``: the
checkpoint's own processor, the reference. Stages (image, prefill, decode) are booked to the
running request's clock (:mod:`vlm3_ros.runtime.timing`).

The mRoPE trap: Qwen3-VL caches the rotary offset of the last prefilled image on the module
(``model.model.rope_deltas``) and reuses it whenever the KV cache is non-empty. The engine stores
the offset with each prefix and restores it before every generate on that prefix; a stale value
from another image silently shifts positions.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import importlib.util
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlm3_ros.contract import answers as contract_answers
from vlm3_ros.contract.prompts import PromptError, check_user_text
from vlm3_ros.contract.question import Answer, BackendError, Question
from vlm3_ros.inference import lm_head, memory
from vlm3_ros.inference.image_processing import DeviceImageProcessor, ProcessorParams, expand_image_tokens
from vlm3_ros.runtime import cancel
from vlm3_ros.runtime.timing import stage

LOG = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
QUANTIZATION = ("none", "8bit", "4bit")
MODES = ("engine", "naive")
IMAGE_PROCESSING = ("device", "pil")


@dataclass(frozen=True)
class LocalModelConfig:
    path: str
    device: str = "cpu"                    # cpu | cuda | cuda:N | auto
    dtype: str = "auto"                    # auto: bf16 on CUDA, fp32 on CPU
    attn_implementation: str = ""          # "" = library default (sdpa); eager; flash_attention_2
    quantization: str = "none"             # 8bit / 4bit need bitsandbytes (Jetson-class memory)
    max_pixels: int = 0                    # image token budget (0 = checkpoint's processor default)
    min_pixels: int = 0
    mode: str = "engine"
    batch_size: int = 32
    min_new_tokens: int = 0                # benchmarks only: force answer lengths on random weights
    image_processing: str = "device"       # device: processor arithmetic on the model's device; pil: reference
    prefix_cache_mb: float = 512.0         # prefilled image prefixes kept for reuse (LRU by bytes; 0 = off)
    shared_prefix_attention: bool = True   # engine: rows share one prefix KV (no per-row copy); False: replicate
    greedy_loop: bool = True               # engine: own greedy decode loop; False: transformers' generate
    sliced_argmax: bool = True             # greedy loop on a CPU: next token from vocabulary slices (lm_head.py)
    prefix_kernel: str = "auto"            # shared prefix: auto | fused | materialized (shared_prefix.PREFIX_KERNELS)
    shared_question_lead: bool = True      # engine: the questions' common leading tokens prefilled once per group
    decode_graph: str = "cuda"             # engine answer steps: off | static | cuda (decode_graph.DECODE_GRAPHS)
    graph_slots: int = 2                   # decode_graph cuda: captured steps kept for later batches (GraphPool)

    def validate(self) -> None:
        if not self.path:
            raise BackendError("model path is empty: set the checkpoint directory for this task")
        p = Path(self.path)
        if not p.is_dir():
            raise BackendError(f"model path {self.path!r} is not a directory (download the VLM3 checkpoint there)")
        if not (p / "config.json").is_file():
            raise BackendError(f"{self.path!r} holds no config.json: not a transformers checkpoint")
        if self.dtype not in DTYPES:
            raise BackendError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.quantization not in QUANTIZATION:
            raise BackendError(f"quantization must be one of {QUANTIZATION}, got {self.quantization!r}")
        if self.mode not in MODES:
            raise BackendError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.image_processing not in IMAGE_PROCESSING:
            raise BackendError(f"image_processing must be one of {IMAGE_PROCESSING}, got {self.image_processing!r}")
        if self.prefix_cache_mb < 0:
            raise BackendError(f"prefix_cache_mb must be >= 0, got {self.prefix_cache_mb}")
        if self.batch_size < 1:
            raise BackendError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_pixels < 0 or self.min_pixels < 0:
            raise BackendError("max_pixels/min_pixels must be >= 0")
        from vlm3_ros.inference.shared_prefix import PREFIX_KERNELS

        if self.prefix_kernel not in PREFIX_KERNELS:
            raise BackendError(f"prefix_kernel must be one of {PREFIX_KERNELS}, got {self.prefix_kernel!r}")
        from vlm3_ros.inference.decode_graph import DECODE_GRAPHS

        if self.decode_graph not in DECODE_GRAPHS:
            raise BackendError(f"decode_graph must be one of {DECODE_GRAPHS}, got {self.decode_graph!r}")
        if self.graph_slots < 0:
            raise BackendError(f"graph_slots must be >= 0, got {self.graph_slots}")


def _torch() -> Any:
    import torch

    return torch


def _mark(name: str) -> Any:
    """A named range for torch.profiler (``vlm3::<name>``; next to nothing when no profiler
    runs): ``bench/engine_bench.py --profile`` splits a frame's kernel time by these stages."""
    return _torch().profiler.record_function("vlm3::" + name)


def resolve_device(device: str) -> str:
    torch = _torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} requested but CUDA is not available (set device: cpu)")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    torch = _torch()
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_processor(path: str, max_pixels: int = 0, min_pixels: int = 0) -> Any:
    """AutoProcessor; where torchvision is missing (no video processor), an image-only
    Qwen3-VL processor built from the checkpoint's tokenizer and image processor."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

    kwargs: dict[str, Any] = {}
    size: dict[str, int] = {}
    if max_pixels:
        size["longest_edge"] = max_pixels
    if min_pixels:
        size["shortest_edge"] = min_pixels
    try:
        # Qwen3-VL's AutoProcessor includes a video processor, which needs torchvision: without it
        # the attempt fails only after loading the tokenizer (seconds on a CPU) for nothing
        if importlib.util.find_spec("torchvision") is None:
            raise ImportError("torchvision is not installed (the video processor needs it)")
        proc = AutoProcessor.from_pretrained(path, **kwargs)
        if not hasattr(proc, "image_processor"):
            raise ValueError("AutoProcessor gave no image processor")
    except (ImportError, ValueError, OSError, TypeError, AttributeError) as e:
        LOG.info("AutoProcessor unavailable for %s (%s); using the image-only Qwen3-VL processor", path, e)

        class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
            def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None,
                         **kw: Any) -> None:
                super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                                 chat_template=chat_template, **kw)

        tok = AutoTokenizer.from_pretrained(path)
        template = tok.chat_template
        jinja = Path(path) / "chat_template.jinja"
        if template is None and jinja.is_file():
            template = jinja.read_text()
        proc = ImageOnlyQwen3VLProcessor(image_processor=AutoImageProcessor.from_pretrained(path),
                                         tokenizer=tok, chat_template=template)
    if size:
        current = dict(getattr(proc.image_processor, "size", {}) or {})
        current.update(size)
        proc.image_processor.size = current
    return proc


class _ModelRegistry:
    """One model object per (path, device, dtype, attention, quantization), shared by tasks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple, tuple[Any, int]] = {}

    def acquire(self, cfg: LocalModelConfig) -> tuple[Any, tuple]:
        device = resolve_device(cfg.device)
        key = (str(Path(cfg.path).resolve()), device, cfg.dtype, cfg.attn_implementation, cfg.quantization)
        with self._lock:
            if key in self._models:
                model, refs = self._models[key]
                self._models[key] = (model, refs + 1)
                return model, key
            model = _load_model(cfg, device)
            self._models[key] = (model, 1)
            return model, key

    def release(self, key: tuple) -> None:
        with self._lock:
            if key not in self._models:
                return
            model, refs = self._models[key]
            if refs > 1:
                self._models[key] = (model, refs - 1)
                return
            del self._models[key]
        del model
        gc.collect()
        torch = _torch()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def loaded(self) -> int:
        with self._lock:
            return len(self._models)


REGISTRY = _ModelRegistry()


def _load_model(cfg: LocalModelConfig, device: str) -> Any:
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": resolve_dtype(cfg.dtype, device)}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.quantization != "none":
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as e:
            raise BackendError(f"quantization {cfg.quantization} needs the bitsandbytes package: {e}") from e
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=cfg.quantization == "8bit",
                                                           load_in_4bit=cfg.quantization == "4bit")
        kwargs["device_map"] = device
    t0 = time.monotonic()
    try:
        model = AutoModelForImageTextToText.from_pretrained(cfg.path, **kwargs)
    except Exception as e:  # a broken checkpoint raises many kinds of errors
        raise BackendError(f"cannot load checkpoint {cfg.path!r}: {type(e).__name__}: {e}") from e
    if cfg.quantization == "none":
        model.to(device)
    model.eval()
    LOG.info("loaded %s on %s (%s) in %.1fs", cfg.path, device, kwargs["dtype"], time.monotonic() - t0)
    return model


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


def _cache_bytes(cache: Any) -> int:
    """Bytes held by a transformers DynamicCache (its layers' key and value tensors)."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if t is not None and hasattr(t, "nelement"):
                total += t.nelement() * t.element_size()
    return total


@dataclass
class _Prefix:
    key: Hashable
    ids: Any                 # (1, P) long
    grid_thw: Any            # (n_images, 3)
    cache: Any               # DynamicCache after the prefix
    rope_deltas: Any
    image_tokens: tuple[int, ...]


class _AnswerEnd:
    """Stopping criterion: a row is done once its reply holds the whole answer under its
    question's ``answer_end`` rule (contract.answers.answer_complete), so a batch does not wait for
    the ``<|im_end|>`` the parser never reads. Only rows whose last token can close an answer ('>'
    or ')' in its text) are decoded, so a step costs a tensor lookup, not B detokenisations."""

    def __init__(self, tokenizer: Any, closers: Any, prompt_len: int, rules: Sequence[str]) -> None:
        self.tokenizer, self.closers, self.prompt_len, self.rules = tokenizer, closers, prompt_len, list(rules)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        torch = _torch()
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] <= self.prompt_len:
            return done
        maybe = self.closers[input_ids[:, -1]].nonzero().flatten().tolist()
        for i in maybe:
            if i < len(self.rules) and self.rules[i]:
                text = self.tokenizer.decode(input_ids[i, self.prompt_len:].tolist(), skip_special_tokens=True)
                done[i] = contract_answers.answer_complete(text, self.rules[i])
        return done


class _HoldEos:
    """Logits processor for benchmarks on random weights: end-of-turn ids are not chosen before
    ``min_new`` new tokens, so every answer has the forced length. It writes only the few eos
    columns in place; transformers' ``min_new_tokens`` processor rewrites the whole (rows x 152k)
    score matrix every step, a cost real serving never pays."""

    def __init__(self, eos_ids: Sequence[int], prompt_len: int, min_new: int) -> None:
        self.eos_ids, self.prompt_len, self.min_new = list(eos_ids), prompt_len, min_new

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[1] - self.prompt_len < self.min_new:
            scores[:, self.eos_ids] = float("-inf")
        return scores


class TransformersBackend:
    """A VLM3 checkpoint on a local device (CPU, CUDA GPU, Jetson)."""

    def __init__(self, cfg: LocalModelConfig, model: Any = None, processor: Any = None) -> None:
        """Load ``cfg.path``; or, with ``model`` and ``processor`` given (benchmarks of a
        random-weight architecture), use those objects and skip the registry."""
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
        tok = self.processor.tokenizer
        self.tokenizer = tok
        self.device = next(self.model.parameters()).device
        self.image_token_id = int(self.model.config.image_token_id)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids("<|endoftext|>")
        eos = {tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")}
        if tok.eos_token_id is not None:
            eos.add(tok.eos_token_id)
        self.eos_ids = sorted(i for i in eos if i is not None and i >= 0)
        self._closed = False
        self._closer_mask: Any = None
        # question_prefill_s / answer_steps_s / answer_steps: the engine's own greedy loop splits its
        # decode time into the questions' prefill (first forward) and the answer steps after it;
        # shared_question_tokens: the questions' common leading tokens prefilled once per group;
        # static_steps / graph_*: answer steps with static shapes, and their CUDA graphs (decode_graph.py)
        self.stats = {"prefills": 0, "generate_calls": 0, "decode_steps": 0, "questions": 0, "prefix_hits": 0,
                      "prefix_misses": 0, "prefix_evictions": 0, "prefix_cache_kib": 0.0,
                      "question_prefill_s": 0.0, "answer_steps_s": 0.0, "answer_steps": 0,
                      "static_steps": 0, "graph_captures": 0, "graph_replays": 0, "graph_failures": 0,
                      "graph_reuses": 0, "padding_rows": 0, "graph_pool_kib": 0.0,
                      "shared_question_tokens": 0}
        # frame prefix cache: images key -> (prefix, prefix text, the images it was made from)
        # (the bytes it holds: the prefix KV and the images it keeps for the same-pixels check)
        self._prefixes: OrderedDict[Hashable, tuple[_Prefix, str, tuple[np.ndarray, ...], int]] = OrderedDict()
        self._prefix_bytes = 0
        # captured answer steps kept for later batches of the same shapes (decode_graph.GraphPool)
        from vlm3_ros.inference.decode_graph import GraphPool

        self._graphs = GraphPool(self.cfg.graph_slots)
        self.image_processor = self._device_image_processor()
        self._shared_prefix = False
        if cfg.mode == "engine" and cfg.shared_prefix_attention:
            self._shared_prefix = self._use_shared_prefix_attention()
        self._sync = _torch().cuda.synchronize if self.device.type == "cuda" else None
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
        if self.cfg.mode == "naive":
            out_naive = []
            for q in questions:
                cancel.check()  # batch boundary: one question
                out_naive.append(self._naive(q))
            return out_naive
        out: list[Answer | None] = [None] * len(questions)
        groups: dict[Hashable, list[int]] = {}
        for i, q in enumerate(questions):
            groups.setdefault(q.images_key, []).append(i)
        for idxs in groups.values():
            answers = self._engine_group([questions[i] for i in idxs])
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
            self._prefixes.clear()
            self._prefix_bytes = 0
            self._graphs.clear()
            self.stats["graph_pool_kib"] = 0.0

    # ------------------------------------------------------------------ helpers
    def _keeps_graphs(self) -> bool:
        """Answer steps replayed as kept graphs on this device (decode_graph.GraphPool)."""
        from vlm3_ros.inference import decode_graph

        return (self._shared_prefix and self.cfg.greedy_loop and self.cfg.decode_graph == "cuda"
                and self.cfg.graph_slots > 0 and decode_graph.graph_factory(self.device) is not None)

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

    def _inputs(self, text: str, images: tuple[np.ndarray, ...]) -> dict[str, Any]:
        """input_ids, attention_mask, mm_token_type_ids, pixel_values, image_grid_thw on the device:
        the checkpoint's processor (pil), or the same arithmetic on the device + the tokenizer."""
        if self.image_processor is None or not images:
            with stage("image", self._sync):
                out = self.processor(text=[text], images=self._pil(images) or None, return_tensors="pt")
                return dict(out.to(self.device))
        with stage("image", self._sync):
            pixel_values, grid = self.image_processor(images)
        merge = self.image_processor.params.merge_size
        enc = self.tokenizer([expand_image_tokens(text, grid.tolist(), merge)], return_tensors="pt")
        ids = enc["input_ids"].to(self.device)
        return {"input_ids": ids, "attention_mask": enc["attention_mask"].to(self.device),
                "mm_token_type_ids": (ids == self.image_token_id).to(ids.dtype),
                "pixel_values": pixel_values, "image_grid_thw": grid}

    def _messages(self, q: Question) -> list[dict]:
        content: list[dict] = [{"type": "image"} for _ in q.images]
        content.append({"type": "text", "text": q.text})
        return [{"role": "user", "content": content}]

    def chat_text(self, q: Question) -> str:
        return self.processor.apply_chat_template(self._messages(q), add_generation_prompt=True, tokenize=False)

    def _gen_kwargs(self, max_new_tokens: int, prompt_len: int, qs: Sequence[Question]) -> dict[str, Any]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "temperature": None,
                              "top_p": None, "top_k": None, "eos_token_id": self.eos_ids, "pad_token_id": self.pad_id}
        if self.cfg.min_new_tokens:
            kw["logits_processor"] = LogitsProcessorList(
                [_HoldEos(self.eos_ids, prompt_len, min(self.cfg.min_new_tokens, max_new_tokens))])
        elif any(q.answer_end for q in qs):  # forced lengths (benchmarks) never stop early
            kw["stopping_criteria"] = StoppingCriteriaList(
                [_AnswerEnd(self.tokenizer, self._closers(), prompt_len, [q.answer_end for q in qs])])
        return kw

    def _closers(self) -> Any:
        """Bool per vocabulary id: the token's text holds '>' or ')' (it can end an answer)."""
        if self._closer_mask is None:
            torch = _torch()
            n = max(len(self.tokenizer), int(self.model.config.get_text_config().vocab_size))
            mask = torch.zeros(n, dtype=torch.bool)
            # byte-level BPE keeps printable ASCII as itself in the token strings; a superset
            # (special tokens such as <|im_end|>) only costs a decode of that row
            ids = [i for tok, i in self.tokenizer.get_vocab().items() if ">" in tok or ")" in tok]
            mask[torch.tensor(ids, dtype=torch.long)] = True
            self._closer_mask = mask.to(self.device)
        return self._closer_mask

    def _decode(self, new_tokens: Any, limit: int) -> tuple[str, int]:
        toks = new_tokens.tolist()[:limit]
        n = len(toks)
        for k, t in enumerate(toks):
            if t in self.eos_ids:
                n = k
                break
        return self.tokenizer.decode(toks[:n], skip_special_tokens=True), n

    def _pil(self, images: tuple[np.ndarray, ...]) -> list[Any]:
        from PIL import Image

        return [Image.fromarray(np.ascontiguousarray(im)) for im in images]

    # ------------------------------------------------------------------ naive
    def _naive(self, q: Question) -> Answer:
        torch = _torch()
        inputs = self._inputs(self.chat_text(q), q.images)
        self.model.model.rope_deltas = None
        # naive: vision encode and prefill happen inside generate, booked as decode
        with torch.inference_mode(), stage("decode"):
            out = self.model.generate(**inputs, **self._gen_kwargs(q.max_new_tokens, inputs["input_ids"].shape[1],
                                                                    [q]))
        p = inputs["input_ids"].shape[1]
        text, n = self._decode(out[0, p:], q.max_new_tokens)
        self.stats["generate_calls"] += 1
        self.stats["decode_steps"] += out.shape[1] - p
        self.stats["questions"] += 1
        return Answer(text=text, prompt_tokens=int(p), generated_tokens=n)

    # ------------------------------------------------------------------ engine
    def _prefill(self, q: Question) -> tuple[_Prefix, str]:
        """Encode the images and prefill everything up to the last <|vision_end|>."""
        torch = _torch()
        from transformers import DynamicCache

        text = self.chat_text(q)
        cut = text.rfind("<|vision_end|>")
        if cut < 0:
            raise BackendError("engine mode needs at least one image in the prompt")
        cut += len("<|vision_end|>")
        prefix_text = text[:cut]
        inputs = self._inputs(prefix_text, q.images)
        ids = inputs["input_ids"]
        cache = DynamicCache(config=self.model.config)
        self.model.model.rope_deltas = None
        with torch.inference_mode(), stage("prefill", self._sync), _mark("image_prefix"):
            self.model(input_ids=ids, attention_mask=inputs["attention_mask"],
                       mm_token_type_ids=inputs["mm_token_type_ids"], pixel_values=inputs["pixel_values"],
                       image_grid_thw=inputs["image_grid_thw"], past_key_values=cache, use_cache=True,
                       logits_to_keep=1)
        self.stats["prefills"] += 1
        grid = inputs["image_grid_thw"]
        merge = int(getattr(self.processor.image_processor, "merge_size", 2))  # same in both image paths
        image_tokens = tuple(int(g.prod()) // merge**2 for g in grid)
        return _Prefix(key=q.images_key, ids=ids, grid_thw=grid, cache=cache,
                       rope_deltas=self.model.model.rope_deltas.clone(), image_tokens=image_tokens), prefix_text

    def _suffix_ids(self, q: Question, prefix_text: str) -> list[int]:
        """Token ids after the shared prefix. The prefix ends in a special token, so BPE cannot
        merge across the cut and prefix + suffix tokenises exactly like the whole text."""
        text = self.chat_text(q)
        if not text.startswith(prefix_text):
            raise BackendError("questions grouped under one images_key render different image prefixes")
        return self.tokenizer(text[len(prefix_text):], add_special_tokens=False)["input_ids"]

    def _cached_prefill(self, q: Question) -> tuple[_Prefix, str]:
        """The prefilled prefix of ``q``'s images: from the frame prefix cache when the same images
        (same key, same pixels, same prompt prefix) were prefilled before, else prefilled now and
        kept, least recently used evicted beyond ``prefix_cache_mb``. Repeated service calls, the
        sparse-depth producer and VO on one frame then pay the image once."""
        budget = int(self.cfg.prefix_cache_mb * 2**20)
        hit = self._prefixes.get(q.images_key)
        if hit is not None:
            prefix, prefix_text, images, _ = hit
            same = len(images) == len(q.images) and all(
                a is b or (a.shape == b.shape and np.array_equal(a, b)) for a, b in zip(images, q.images, strict=True))
            if same and self.chat_text(q).startswith(prefix_text):
                self._prefixes.move_to_end(q.images_key)
                self.stats["prefix_hits"] += 1
                return prefix, prefix_text
        self.stats["prefix_misses"] += 1
        prefix, prefix_text = self._prefill(q)
        if budget:
            self._drop_prefix(q.images_key)
            size = _cache_bytes(prefix.cache) + sum(int(im.nbytes) for im in q.images)
            if size <= budget:
                self._prefixes[q.images_key] = (prefix, prefix_text, tuple(q.images), size)
                self._prefix_bytes += size
                while self._prefix_bytes > budget:
                    self._drop_prefix(next(iter(self._prefixes)))
                    self.stats["prefix_evictions"] += 1
        self.stats["prefix_cache_kib"] = round(self._prefix_bytes / 2**10, 1)
        return prefix, prefix_text

    def _drop_prefix(self, key: Hashable) -> None:
        old = self._prefixes.pop(key, None)
        if old is not None:
            self._prefix_bytes -= old[3]

    def _greedy(self, ids: Any, mask: Any, P: int, cache: Any, rope_deltas: Any, max_new: int,
                batch: Sequence[Question]) -> Any:
        """Greedy decoding of a batch on a prefilled prefix: what ``generate`` does for greedy
        search (the same forward calls, positions, end-of-turn and stopping rules), without its
        per-step float32 copy of the (rows x vocabulary) logits and its logits-processor pass.
        Returns ``ids`` with the new tokens appended (rows that ended padded with pad_id)."""
        torch = _torch()
        B, start = ids.shape[0], ids.shape[1]
        # text positions continue from the attention mask (padding sits between prefix and
        # question, so each row's question follows its prefix); Qwen3-VL adds the image's rope offset
        pos = mask.cumsum(-1) - 1
        pos = pos.masked_fill(mask == 0, 1)
        eos = torch.tensor(self.eos_ids, device=ids.device)
        hold = min(self.cfg.min_new_tokens, max_new)
        stop = _AnswerEnd(self.tokenizer, self._closers(), start, [q.answer_end for q in batch]) \
            if not hold and any(q.answer_end for q in batch) else None
        unfinished = torch.ones(B, dtype=torch.bool, device=ids.device)
        step_ids, step_pos = ids[:, P:], pos[:, P:]
        out = [ids]
        # CPU: the output layer and argmax in vocabulary slices (the same tokens, no full logits)
        head = (lm_head.head_for(self.model.lm_head.weight) if self.cfg.sliced_argmax and ids.device.type == "cpu"
                and lm_head.sliceable(self.model.lm_head) else None)
        sliced = head is not None and head.min_rows <= B

        def forward(step_ids: Any, mask: Any, position_ids: Any) -> Any:
            if sliced:
                return self.model.model(input_ids=step_ids, attention_mask=mask, position_ids=position_ids,
                                        past_key_values=cache, use_cache=True).last_hidden_state[:, -1, :]
            return self.model(input_ids=step_ids, attention_mask=mask, position_ids=position_ids,
                              past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]

        # answer steps with static shapes (and as a CUDA graph): only over the shared prefix's
        # preallocated buffers, set up after the questions' prefill (decode_graph.py)
        use_static = self.cfg.decode_graph != "off" and self._shared_prefix and self.cfg.greedy_loop
        static = None
        t0 = time.perf_counter()
        for t in range(max_new):
            if t == 1:   # the first forward was the questions' prefill; the answer steps follow
                if self._sync is not None:
                    self._sync()
                t1 = time.perf_counter()
                self.stats["question_prefill_s"] += t1 - t0
            # benchmarks on random weights: no end of turn before the forced length
            banned = eos if t < hold else eos[:0]
            with _mark("answer_step" if t else "question_prefill"):
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
            if use_static and static is None:   # after the questions' prefill: the answer steps
                from vlm3_ros.inference.decode_graph import StaticDecode

                static = StaticDecode(forward, cache, mask, P, step_ids.shape[1], self.model.dtype,
                                      self.cfg.decode_graph == "cuda", self.stats, self._graphs)
            if static is None:
                mask = torch.cat([mask, mask.new_ones(B, 1)], dim=1)
            step_ids, step_pos = nxt[:, None], step_pos[:, -1:] + 1
        if len(out) > 2:   # answer steps after the prefill: their time and count (docs/engine.md)
            if self._sync is not None:
                self._sync()
            self.stats["answer_steps_s"] += time.perf_counter() - t1
            self.stats["answer_steps"] += len(out) - 2
        else:
            self.stats["question_prefill_s"] += time.perf_counter() - t0
        return torch.cat(out, dim=1)

    def _common_lead(self, prefix: _Prefix, suffixes: list[list[int]]) -> tuple[_Prefix, list[list[int]]]:
        """The group's questions' common leading tokens (the depth prompt's "Given this image, how
        far is the point at coordinates (", 12 of its 80-86 tokens) prefilled once, at batch 1, on a
        copy of the image prefix: the rows then start after them. Their keys and values are the same
        in every row (causal attention: a token sees only what precedes it), so this is the same
        computation as per row. Each row keeps at least its last token, whose logits give its first
        answer token. The split is on token ids, so each row's tokens are exactly its own."""
        k = common_lead_length(suffixes) if self.cfg.shared_question_lead else 0
        if k == 0:
            return prefix, suffixes
        first = suffixes[0]
        torch = _torch()
        P = prefix.ids.shape[1]
        lead = torch.tensor([first[:k]], dtype=torch.long, device=self.device)
        cache = copy.deepcopy(prefix.cache)   # the frame prefix cache keeps the image prefix alone
        # positions continue the prefix's, plus the image's rope offset, as in _greedy
        pos = torch.arange(P, P + k, device=self.device)[None] + prefix.rope_deltas
        self.model.model.rope_deltas = prefix.rope_deltas
        t0 = time.perf_counter()
        mask = torch.ones((1, P + k), dtype=torch.long, device=self.device)
        with torch.inference_mode(), _mark("question_lead"):
            self.model.model(input_ids=lead, attention_mask=mask, position_ids=pos[None], past_key_values=cache,
                             use_cache=True)
        if self._sync is not None:
            self._sync()
        self.stats["question_prefill_s"] += time.perf_counter() - t0
        self.stats["shared_question_tokens"] += k
        return (_Prefix(key=prefix.key, ids=torch.cat([prefix.ids, lead], dim=1), grid_thw=prefix.grid_thw,
                        cache=cache, rope_deltas=prefix.rope_deltas, image_tokens=prefix.image_tokens),
                [s[k:] for s in suffixes])

    def _engine_group(self, qs: list[Question]) -> list[Answer]:
        torch = _torch()
        prefix, prefix_text = self._cached_prefill(qs[0])
        answers: list[Answer] = []
        bs = self.cfg.batch_size
        # decode: per batch, the suffix tokens, the prefix-cache copy and generate (the model)
        with stage("decode", self._sync):
            own = [self._suffix_ids(q, prefix_text) for q in qs]
            P = prefix.ids.shape[1]
            for start in range(0, len(qs), bs):
                cancel.check()  # batch boundary: stop here when the caller gave up or the node stops
                if start == 0:   # after the first check: a cancelled job prefills nothing
                    prefix, own = self._common_lead(prefix, own)
                    P = prefix.ids.shape[1]
                batch = qs[start:start + bs]
                suffixes = own[start:start + bs]
                L = max(len(s) for s in suffixes)
                n = len(batch)   # the batch's own questions; padding rows after them are dropped
                if self._keeps_graphs():   # padded to run on a kept graph where one fits (decode_graph.ROW_PAD)
                    rows, L = self._graphs.fitting_shape(n, P, L, max(q.max_new_tokens for q in batch))
                    batch = batch + [batch[-1]] * (rows - n)
                    suffixes = suffixes + [suffixes[-1]] * (rows - n)
                B = len(batch)
                ids = torch.full((B, P + L), self.pad_id, dtype=torch.long, device=self.device)
                mask = torch.zeros((B, P + L), dtype=torch.long, device=self.device)
                ids[:, :P] = prefix.ids[0]
                mask[:, :P] = 1
                for i, s in enumerate(suffixes):
                    ids[i, P + L - len(s):] = torch.tensor(s, dtype=torch.long, device=self.device)
                    mask[i, P + L - len(s):] = 1
                mm = (ids == self.image_token_id).to(torch.int)
                if self._shared_prefix:
                    from vlm3_ros.inference import shared_prefix

                    # the rows' own KV (padding + question + answer) preallocated once per batch
                    cache = shared_prefix.shared_prefix_cache(prefix.cache, self.model.config,
                                                              L + max(q.max_new_tokens for q in batch),
                                                              self.cfg.prefix_kernel)
                    sharing: Any = shared_prefix.active(cache)
                else:
                    cache = copy.deepcopy(prefix.cache)
                    if B > 1:
                        cache.batch_repeat_interleave(B)
                    sharing = contextlib.nullcontext()
                self.model.model.rope_deltas = prefix.rope_deltas
                max_new = max(q.max_new_tokens for q in batch)
                with torch.inference_mode(), sharing:
                    if self.cfg.greedy_loop:
                        out = self._greedy(ids, mask, P, cache, prefix.rope_deltas, max_new, batch)
                    else:
                        out = self.model.generate(input_ids=ids, attention_mask=mask, mm_token_type_ids=mm,
                                                  image_grid_thw=prefix.grid_thw, past_key_values=cache,
                                                  **self._gen_kwargs(max_new, P + L, batch))
                self.stats["generate_calls"] += 1
                self.stats["decode_steps"] += out.shape[1] - (P + L)   # positions the batch stepped through
                for i, q in enumerate(batch[:n]):
                    text, made = self._decode(out[i, P + L:], q.max_new_tokens)
                    answers.append(Answer(text=text, prompt_tokens=P + len(suffixes[i]), generated_tokens=made))
                self.stats["questions"] += n
                self.stats["padding_rows"] += B - n
        return answers
