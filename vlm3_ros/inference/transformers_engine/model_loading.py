"""Loading a checkpoint: device and dtype resolution, the processor, the model, and the registry
that lets tasks whose checkpoints are the same share one model object."""

from __future__ import annotations

import gc
import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import Any

from vlm3_ros.contract.question import BackendError
from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
from vlm3_ros.inference.transformers_engine.quantize import quantize_model, torchao_missing

LOG = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} requested but CUDA is not available (set device: cpu)")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_processor(path: str, max_pixels: int = 0, min_pixels: int = 0) -> Any:
    """AutoProcessor; where torchvision is missing (no video processor), an image-only
    Qwen3-VL processor built from the checkpoint's tokenizer and image processor."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

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
        proc = AutoProcessor.from_pretrained(path)
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


def load_model(cfg: TransformersConfig, device: str) -> Any:
    """The checkpoint's ``AutoModelForImageTextToText`` on ``device``, in eval mode."""
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": resolve_dtype(cfg.dtype, device)}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.quantization != "none":
        missing = torchao_missing()    # before the load: a missing library fails in a moment, not after it
        if missing:
            raise BackendError(f"quantization {cfg.quantization} needs torchao: {missing}")
    t0 = time.monotonic()
    try:
        model = AutoModelForImageTextToText.from_pretrained(cfg.path, **kwargs)
    except Exception as e:  # a broken checkpoint raises many kinds of errors
        raise BackendError(f"cannot load checkpoint {cfg.path!r}: {type(e).__name__}: {e}") from e
    model.to(device)
    if cfg.quantization != "none":
        quantize_model(model, cfg.quantization, device)
    model.eval()
    LOG.info("loaded %s on %s (%s, quantization %s) in %.1fs", cfg.path, device, kwargs["dtype"], cfg.quantization,
             time.monotonic() - t0)
    return model


class ModelRegistry:
    """One model object per (path, device, dtype, attention, quantization), shared by tasks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple, tuple[Any, int]] = {}

    def acquire(self, cfg: TransformersConfig) -> tuple[Any, tuple]:
        device = resolve_device(cfg.device)
        key = (str(Path(cfg.path).resolve()), device, cfg.dtype, cfg.attn_implementation, cfg.quantization)
        with self._lock:
            if key in self._models:
                model, refs = self._models[key]
                self._models[key] = (model, refs + 1)
                return model, key
            model = load_model(cfg, device)
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
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def loaded(self) -> int:
        with self._lock:
            return len(self._models)


REGISTRY = ModelRegistry()
