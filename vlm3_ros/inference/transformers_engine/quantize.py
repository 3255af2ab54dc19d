"""Weight-only int8 / int4 quantisation of a loaded model with torchao, applied in place at load.

Converted: every ``nn.Linear`` of the text layers and of the vision encoder (blocks and mergers);
kept at the activation dtype: the embedding and the output layer that shares its weight (the
greedy head reads it directly), norms, biases, the patch embedding. The weights become torchao
tensor subclasses whose ``linear`` runs a quantised kernel, so the model's own code, the engine's
shared-prefix attention, the static answer steps and ``torch.compile`` run unchanged on them.

- ``int8``: symmetric per output row (``Int8WeightOnlyConfig``), any device and dtype.
- ``int4``: asymmetric per group of 128 inputs (64 or 32 where 128 does not divide a layer's input
  width; a layer none divides stays unquantised), the tinygemm kernels: on a CPU
  ``aten._weight_int4pack_mm_for_cpu`` (torchao's prototype ``Int4OpaqueTensor``), on CUDA
  ``aten._weight_int4pack_mm`` (``Int4WeightOnlyConfig`` with the ``tile_packed_to_4d`` packing;
  bfloat16 only).

torchao's inductor settings are left as they are (``set_inductor_config=False``): the engine's
compiled step keeps its own.
"""

from __future__ import annotations

import logging
from typing import Any

from vlm3_ros.contract.question import BackendError
from vlm3_ros.inference.memory_plan import INT4_GROUP_SIZES, int4_group

LOG = logging.getLogger(__name__)

QUANTIZED = ("int8", "int4")
TORCHAO_PIN = "torchao==0.18.0"


def torchao_missing() -> str:
    """Why torchao cannot be used here ('' when it can)."""
    try:
        import torchao  # noqa: F401
        from torchao.quantization import quantize_  # noqa: F401
    except ImportError as e:
        return f"torchao is not installed ({e}): pip install {TORCHAO_PIN}"
    return ""


def converted(name: str, module: Any) -> bool:
    """Whether quantisation converts ``module`` (a linear layer other than the output layer)."""
    import torch

    return isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")


def _int4_config(group: int, device: str) -> Any:
    if device.startswith("cuda"):
        from torchao.quantization import Int4WeightOnlyConfig

        return Int4WeightOnlyConfig(group_size=group, int4_packing_format="tile_packed_to_4d",
                                    set_inductor_config=False)
    from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig

    return PrototypeInt4WeightOnlyConfig(group_size=group, set_inductor_config=False)


def quantize_model(model: Any, quantization: str, device: str) -> int:
    """Quantise ``model``'s linear layers (module docstring) in place; returns how many were
    converted. BackendError where torchao is missing or the dtype does not suit the kernel."""
    if quantization not in QUANTIZED:
        raise BackendError(f"quantization must be one of {QUANTIZED}, got {quantization!r}")
    missing = torchao_missing()
    if missing:
        raise BackendError(f"quantization {quantization} needs torchao: {missing}")
    import torch
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    dtype = next(model.parameters()).dtype
    if quantization == "int4" and device.startswith("cuda") and dtype != torch.bfloat16:
        raise BackendError(f"quantization int4 on CUDA runs the tinygemm kernel, which takes bfloat16 weights: "
                           f"set model.dtype bfloat16 (or auto), not {dtype}")
    names = [n for n, m in model.named_modules() if converted(n, m)]   # torchao's filter_fn takes (module, name)
    if quantization == "int8":
        quantize_(model, Int8WeightOnlyConfig(set_inductor_config=False), filter_fn=lambda m, n: converted(n, m))
        done = len(names)
    else:
        done = 0
        for group in INT4_GROUP_SIZES:
            def in_group(module: Any, name: str, g: int = group) -> bool:
                return converted(name, module) and int4_group(module.in_features) == g

            count = sum(1 for n, m in model.named_modules() if in_group(m, n))
            if count:
                quantize_(model, _int4_config(group, device), filter_fn=in_group)
                done += count
    LOG.info("quantised %d of %d linear layers to %s on %s", done, len(names), quantization, device)
    return done


def stored_bytes(model: Any) -> int:
    """Bytes the model's parameters hold, counting a quantised weight's inner tensors (its packed
    data, scales and zero points) rather than its logical shape."""
    total = 0
    for p in model.parameters():
        t = p.data if hasattr(p, "data") else p
        flatten = getattr(t, "__tensor_flatten__", None)
        if flatten is None:
            total += t.numel() * t.element_size()
            continue
        inner, _ = flatten()
        total += sum(getattr(t, n).numel() * getattr(t, n).element_size() for n in inner
                     if getattr(t, n, None) is not None)
    return total
