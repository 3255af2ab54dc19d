"""The transformers backend's configuration (one per task, built from the node's parameters by
``vlm3_ros.params.mapping``); importable without torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlm3_ros.contract.question import BackendError

DTYPES = ("auto", "bfloat16", "float16", "float32")
# Weight-only quantisation at load (transformers_engine/quantize.py, torchao): none | int8 | int4
QUANTIZATION = ("none", "int8", "int4")
MODES = ("engine", "naive")
IMAGE_PROCESSING = ("device", "pil")
# How the shared prefix's attention is computed (shared_prefix.PREFIX_KERNELS; flex: FlexAttention,
# one kernel per layer over prefix and own keys)
PREFIX_KERNELS = ("auto", "fused", "materialized", "flex")
# Answer steps: off (the cache grows per step) | static (fixed shapes) | cuda (fixed shapes, CUDA graphs)
DECODE_GRAPHS = ("off", "static", "cuda")


@dataclass(frozen=True)
class TransformersConfig:
    path: str
    device: str = "cpu"                    # cpu | cuda | cuda:N | auto
    dtype: str = "auto"                    # auto: bf16 on CUDA, fp32 on CPU
    attn_implementation: str = ""          # "" = library default (sdpa); eager; flash_attention_2
    quantization: str = "none"             # int8 / int4 weight-only (torchao; quantize.py)
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
    prefix_kernel: str = "auto"            # shared prefix: auto | fused | materialized | flex (PREFIX_KERNELS)
    shared_question_lead: bool = True      # engine: the questions' common leading tokens prefilled once per group
    decode_graph: str = "cuda"             # engine answer steps: off | static | cuda (DECODE_GRAPHS)
    graph_slots: int = 2                   # decode_graph cuda: captured steps kept for later batches (GraphPool)
    compile_step: bool = False             # static answer steps compiled with torch.compile (compiled_step.py)
    warmup_rows: tuple[int, ...] = ()      # compile_step: batch sizes run at configure on a dummy frame (() = 1, 2)

    def validate(self) -> None:
        if not self.path:
            raise BackendError("model path is empty: set the checkpoint directory for this task")
        p = Path(self.path)
        if not p.is_dir():
            raise BackendError(f"model path {self.path!r} is not a directory (download the VLM3 checkpoint there)")
        if not (p / "config.json").is_file():
            raise BackendError(f"{self.path!r} holds no config.json: not a transformers checkpoint")
        choices = {"dtype": DTYPES, "quantization": QUANTIZATION, "mode": MODES, "image_processing": IMAGE_PROCESSING,
                   "prefix_kernel": PREFIX_KERNELS, "decode_graph": DECODE_GRAPHS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise BackendError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.prefix_cache_mb < 0:
            raise BackendError(f"prefix_cache_mb must be >= 0, got {self.prefix_cache_mb}")
        if self.batch_size < 1:
            raise BackendError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_pixels < 0 or self.min_pixels < 0:
            raise BackendError("max_pixels/min_pixels must be >= 0")
        if self.graph_slots < 0:
            raise BackendError(f"graph_slots must be >= 0, got {self.graph_slots}")
        if any(r < 1 for r in self.warmup_rows):
            raise BackendError(f"warmup_rows must be >= 1 each, got {self.warmup_rows}")
