"""The greedy next token straight from the last hidden states on a CPU: the output projection
and the argmax over the vocabulary in slices, so the (rows x vocabulary) logits never exist at
once, with the slices' weights prepacked for oneDNN where that is available.

Why (the measurements: bench/results/lm_head_cpu.md):
- The full float32 logits of a few hundred rows are over a hundred MB written and read back per
  step; a slice of 4096 tokens stays in the caches.
- ``max(-1)`` (value and index) over a slice cost several times ``amax(-1)`` (value only). Each slice
  therefore takes the value first and the index only for the rows whose best value it beats
  (strictly: ties stay with the earlier slice, the lowest id, as ``torch.argmax``). A row's best
  moves a few times over the vocabulary, not at every slice.
- PyTorch's CPU matrix product (MKL) ran this thin product (width 64) slower than oneDNN with
  the weight reordered once, on the AMD cores it was measured on. oneDNN's
  ``_linear_pointwise`` is the op PyTorch's own compiler uses for frozen linear layers; a probe at
  packing time checks it against ``torch.nn.functional.linear`` and the plain product is used
  wherever it is missing or disagrees.
``bench/lm_head_bench.py`` compares the ways side by side (bench/results/lm_head_cpu.md). Below
:attr:`GreedyHead.min_rows` rows one full projection is as fast, and the caller keeps the
model's own output layer.

Exact: each slice is the same matrix product of the same rows; test/unit/inference/test_lm_head.py
and the engine's token-identity tests (test/model/test_engine_tiny.py) check it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

SLICE_TOKENS = 4096
# Below this many rows the full logits fit the caches and one projection is about as fast
# (2 cores, 152k x 64 fp32, bench/results/lm_head_cpu.md): plain slices from 48 rows, packed
# ones from 8.
MIN_ROWS = 48
MIN_ROWS_PACKED = 8
# The reordered copy doubles the output layer's memory: only for layers up to this size (the tiny
# and small checkpoints; a 4B's fp32 output layer, 1.5 GB, keeps the plain product).
PACK_MAX_BYTES = 256 * 2**20
# oneDNN's reorder is tuned for a batch size; the engine's batches are up to a few hundred rows.
PACK_ROWS = 256


def _pack(weight: Any, rows: int) -> Any | None:
    """``weight`` (tokens, width) reordered for oneDNN's linear, or None where this PyTorch build
    has no such op, the dtype is not float32, or the reordered product disagrees with the plain one."""
    import torch

    if weight.dtype != torch.float32 or weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return None
    try:
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)
            probe = torch.randn(3, weight.shape[1], generator=torch.Generator().manual_seed(0))
            got = torch.ops.mkldnn._linear_pointwise(probe, packed, None, "none", [], "")
            want = torch.nn.functional.linear(probe, weight)
    except (AttributeError, RuntimeError, TypeError):
        return None
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max())):
        return None
    return packed


class GreedyHead:
    """``argmax(hidden @ weight.T, -1)`` per row for one bias-free output layer's ``weight``
    (vocabulary, width), computed ``slice_tokens`` vocabulary rows at a time; ``pack`` reorders
    the slices for oneDNN once (float32 CPU weights up to :data:`PACK_MAX_BYTES`)."""

    def __init__(self, weight: Any, slice_tokens: int = SLICE_TOKENS, pack: bool = True) -> None:
        if slice_tokens < 1:
            raise ValueError("slice_tokens must be >= 1")
        weight = weight.detach()
        self.slice_tokens = slice_tokens
        self.starts = list(range(0, weight.shape[0], slice_tokens))
        plain = [weight[s:s + slice_tokens] for s in self.starts]
        packed: list[Any] = []
        if pack and weight.element_size() * weight.numel() <= PACK_MAX_BYTES:
            for w in plain:
                p = _pack(w, PACK_ROWS)
                if p is None:
                    packed = []
                    break
                packed.append(p)
        self.packed = bool(packed)
        # what the reordered copy was made from: an in-place update (training) or a swapped
        # storage makes it stale, and head_for builds a new one
        self.made_from = _stamp(weight)
        self._slices = packed or plain
        # the fewest rows for which this head beats one full projection
        self.min_rows = MIN_ROWS_PACKED if self.packed else MIN_ROWS

    def _project(self, hidden: Any, k: int) -> Any:
        import torch

        if self.packed:
            return torch.ops.mkldnn._linear_pointwise(hidden, self._slices[k], None, "none", [], "")
        return torch.nn.functional.linear(hidden, self._slices[k])

    def __call__(self, hidden: Any, banned: Sequence[int] | Any = ()) -> Any:
        """The greedy token of each row of ``hidden`` (rows, width), ``banned`` ids never chosen."""
        import torch

        with torch.no_grad():
            return self._greedy(hidden.contiguous(), banned)

    def _greedy(self, hidden: Any, banned: Sequence[int] | Any) -> Any:
        import torch

        banned_t = torch.as_tensor(banned, dtype=torch.long, device=hidden.device).reshape(-1)
        best_val: Any = None
        best_idx: Any = None
        for k, start in enumerate(self.starts):
            logits = self._project(hidden, k)
            if banned_t.numel():
                local = banned_t[(banned_t >= start) & (banned_t < start + logits.shape[1])] - start
                if local.numel():
                    logits[:, local] = float("-inf")
            if best_val is None:
                best_val, best_idx = logits.max(-1)   # first maximum within the slice, as torch.argmax
                continue
            val = logits.amax(-1)
            better = val > best_val   # strictly: an equal value in a later slice has a higher id
            if bool(better.any()):
                rows = better.nonzero().squeeze(1)
                best_idx[rows] = logits[rows].argmax(-1) + start
                best_val = torch.where(better, val, best_val)
        return best_idx


def _stamp(weight: Any) -> tuple[int, int]:
    return weight.data_ptr(), int(weight._version)


# id(weight) -> (a weak reference to it, its head); an entry goes when its weight goes (a
# WeakKeyDictionary cannot hold tensors: their == compares elements)
_HEADS: dict[int, tuple[weakref.ref, GreedyHead]] = {}
_HEADS_LOCK = threading.Lock()


def head_for(weight: Any) -> GreedyHead:
    """The :class:`GreedyHead` of an output layer's weight, built once per weight tensor (backends
    sharing a loaded model share it; it goes with the weight) and again after the weight changed."""
    key = id(weight)
    with _HEADS_LOCK:
        ref, head = _HEADS.get(key, (None, None))
        if head is None or ref() is not weight or head.made_from != _stamp(weight):
            head = GreedyHead(weight)
            if ref is None or ref() is not weight:
                weakref.finalize(weight, _HEADS.pop, key, None)
            _HEADS[key] = (weakref.ref(weight), head)
        return head


def greedy_tokens(hidden: Any, weight: Any, banned: Sequence[int] | Any = (), slice_tokens: int = SLICE_TOKENS,
                  pack: bool = False) -> Any:
    """One-off :class:`GreedyHead` call: ``argmax(hidden @ weight.T, -1)`` with ``banned`` ids
    never chosen (unpacked by default: packing pays only when the head is reused)."""
    return GreedyHead(weight, slice_tokens, pack)(hidden, banned)


def sliceable(lm_head: Any) -> bool:
    """Whether ``lm_head`` is a plain bias-free linear layer whose weight can be sliced (not a
    quantized or wrapped one: those keep the model's own forward)."""
    import torch

    return (type(lm_head) is torch.nn.Linear and lm_head.bias is None
            and type(lm_head.weight.data) is torch.Tensor and lm_head.weight.dim() == 2)

