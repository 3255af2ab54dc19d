"""TEST EMULATION of a CUDA graph on any device, for the tests only: what capture-and-replay does
to a step, without a GPU.

A CUDA graph records the kernels a function launches, with their tensor addresses and scalar
arguments fixed, and a replay runs exactly those kernels again: Python does not run, so any value
the function computed on the host (a position counter, a shape-dependent branch, a Python int
read from a cache) is frozen at its capture-time value; and an op that needs the host to read a
device value (``.item()``, ``nonzero``) cannot be captured at all. :class:`ReplayGraph` records
the ATen ops of one call the same way (a TorchDispatchMode: every op with its argument tensors
and its output tensors) and replays them on the same tensors, each op's new result copied into
the output it had at capture; the host-reading ops raise :class:`CaptureError` during capture, as
CUDA capture fails on them. A decode step that gives the same tokens under this replay as eagerly
depends on nothing but its input tensors.

It is not a CUDA graph: it says nothing about speed, memory pools or stream rules; the real one
runs where a GPU is (``bench/gpu_check.sh``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
# ops whose result the host must read (a sync, or an output shape that depends on the data)
HOST_READS = {aten._local_scalar_dense.default, aten.is_nonzero.default, aten.nonzero.default,
              aten.masked_select.default, aten.equal.default, aten.allclose.default}


class CaptureError(RuntimeError):
    """An op in the captured call reads a device value on the host: CUDA capture fails on it."""


class _Recorder(TorchDispatchMode):
    def __init__(self, ops: list[tuple[Any, tuple, dict, Any]]) -> None:
        super().__init__()
        self.ops = ops

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in HOST_READS:
            raise CaptureError(f"{func} reads a device value on the host; a CUDA graph cannot capture it")
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out


def _copy_into(recorded: Any, new: Any) -> None:
    if isinstance(recorded, torch.Tensor):
        if recorded is not new:
            recorded.copy_(new)
    elif isinstance(recorded, (tuple, list)):
        for r, n in zip(recorded, new, strict=True):
            _copy_into(r, n)


class ReplayGraph:
    """``capture(fn)`` runs ``fn`` once, recording its ops; ``replay()`` reruns the recorded ops
    on the recorded tensors (the interface of decode_graph's CUDA graph)."""

    needs_side_stream = False

    def __init__(self) -> None:
        self.ops: list[tuple[Any, tuple, dict, Any]] = []

    def capture(self, fn: Callable[[], Any]) -> Any:
        self.ops.clear()
        with _Recorder(self.ops):
            return fn()

    def replay(self) -> None:
        for func, args, kwargs, out in self.ops:
            _copy_into(out, func(*args, **kwargs))
