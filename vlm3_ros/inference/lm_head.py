"""The greedy next token straight from the last hidden states: the output projection and the
argmax over the vocabulary in slices, so the (rows x vocabulary) logits never exist at once.

Why: on a CPU the tiny checkpoint's decode step is mostly its output layer (152k tokens): the
full float32 logits of 256 rows are 156 MB written and read back by argmax per step. A slice of
8192 tokens stays in the cache; measured on 2 cores, projection + argmax took 61 ms instead of
108 ms for 256 rows and 23 ms instead of 30 ms for 64 rows (docs/engine.md); below
:data:`MIN_ROWS` rows the full logits stay in the caches and slicing does not pay. Exact: each slice is
the same matrix product of the same rows, and ties go to the lowest token id as in
``torch.argmax``; test/unit/inference/test_lm_head.py and the engine's token-identity tests check it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SLICE_TOKENS = 8192
# Below this many rows the full logits fit the caches and one projection is as fast or faster
# (measured on 2 cores, 152k x 64 fp32: 2.0 vs 2.6 ms at 1 row, 11.2 vs 12.3 ms at 32, 30.9 vs
# 22.6 ms at 64; bf16 gains from 32 rows).
MIN_ROWS = 48


def greedy_tokens(hidden: Any, weight: Any, banned: Sequence[int] | Any = (), slice_tokens: int = SLICE_TOKENS) -> Any:
    """``argmax(hidden @ weight.T, -1)`` per row, with the ``banned`` token ids never chosen,
    computed ``slice_tokens`` vocabulary rows at a time. ``hidden`` (rows, width), ``weight``
    (vocabulary, width): a bias-free output layer's weight."""
    import torch

    if slice_tokens < 1:
        raise ValueError("slice_tokens must be >= 1")
    banned_t = torch.as_tensor(banned, dtype=torch.long, device=hidden.device).reshape(-1)
    best_val: Any = None
    best_idx: Any = None
    vocab = weight.shape[0]
    for start in range(0, vocab, slice_tokens):
        logits = torch.nn.functional.linear(hidden, weight[start:start + slice_tokens])
        if banned_t.numel():
            local = banned_t[(banned_t >= start) & (banned_t < start + logits.shape[1])] - start
            if local.numel():
                logits[:, local] = float("-inf")
        val, idx = logits.max(-1)   # first maximum within the slice, as torch.argmax
        if best_val is None:
            best_val, best_idx = val, idx
        else:
            better = val > best_val   # strictly: an equal value in a later slice has a higher id
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, idx + start, best_idx)
    return best_idx


def sliceable(lm_head: Any) -> bool:
    """Whether ``lm_head`` is a plain bias-free linear layer whose weight can be sliced (not a
    quantized or wrapped one: those keep the model's own forward)."""
    import torch

    return (type(lm_head) is torch.nn.Linear and lm_head.bias is None
            and type(lm_head.weight.data) is torch.Tensor and lm_head.weight.dim() == 2)
