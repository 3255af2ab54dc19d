"""Attention over one shared image prefix without replicating its KV cache per batch row.

The engine's batch is B questions on one frame: every row is ``[prefix][padding][question]``
with the same prefix (the image tokens, ~1.1k). Replicating the prefix's KV per row costs
B x (prefix KV) of memory and, with a concatenating cache, that much memory traffic per decode
step. Here each text layer's cache keeps the prefix once (batch 1) and only the rows' own tokens
(padding, question, answer) per row; the attention of a row's queries is computed over each part
and the two combined exactly by their log-sum-exps (cascade attention), so the result is the
same attention as over the concatenated keys. The prefix is read with all rows' queries folded
into one (KV heads, rows x queries, head dim) batch: once per step, not once per row; on a CPU
by PyTorch's fused flash kernel, which never writes the (rows x prefix) scores.

Plugged in through transformers' attention registries (``AttentionInterface`` and
``AttentionMaskInterface``, name :data:`NAME`), so the model code stays the library's: layers
whose cache is not a :class:`SharedPrefixLayer` (the prefix prefill, the vision encoder, a plain
``generate``) run PyTorch's SDPA as before.
"""

from __future__ import annotations

import contextvars
from contextlib import AbstractContextManager
from typing import Any

import torch
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from vlm3_ros.inference.transformers_engine.engine_settings import PREFIX_KERNELS
from vlm3_ros.runtime.cancel import scoped

NAME = "vlm3_shared_prefix"


class SharedPrefixLayer(DynamicLayer):
    """One layer's cache: the prefix's keys/values once (1, kv heads, P, d) plus every row's own
    keys/values (B, kv heads, T, d) (T is only the rows' own tokens). ``update`` stores and returns
    the rows' own keys/values only; the attention function adds the prefix. With ``capacity``
    (the engine: question + answer tokens) the rows' own keys/values are written into buffers
    allocated once, so a decode step copies one position per row instead of concatenating the
    whole own cache; beyond it, or without it (training), they grow by concatenation."""

    def __init__(self, prefix_keys: torch.Tensor, prefix_values: torch.Tensor, capacity: int = 0,
                 prefix_kernel: str = "auto") -> None:
        super().__init__()
        if prefix_kernel not in PREFIX_KERNELS:
            raise ValueError(f"prefix_kernel must be one of {PREFIX_KERNELS}, got {prefix_kernel!r}")
        self.prefix_keys = prefix_keys
        self.prefix_values = prefix_values
        self.capacity = capacity
        self.prefix_kernel = prefix_kernel
        self._fill = 0
        self._k_buf: torch.Tensor | None = None
        self._v_buf: torch.Tensor | None = None
        self._index: torch.Tensor | None = None

    def make_static(self, index: torch.Tensor) -> None:
        """From now on one position per row per call is written at ``index`` (a one-element long
        tensor the caller advances) and the whole buffers are returned: shapes and addresses stay
        the same from step to step, so a decode step can be captured once and replayed (CUDA
        graphs). The caller's 4D mask hides the positions not written yet."""
        if self._k_buf is None:
            raise RuntimeError("static decode needs the preallocated buffers (a capacity and a first update)")
        self._index = index

    def static_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What a captured static step reads of this layer: the prefix keys/values and the rows'
        own key/value buffers (after :meth:`make_static`)."""
        if self._k_buf is None or self._v_buf is None:
            raise RuntimeError("static decode needs the preallocated buffers (a capacity and a first update)")
        return self.prefix_keys, self.prefix_values, self._k_buf, self._v_buf

    def own_prefix(self) -> None:
        """Hold a private copy of the prefix keys/values: a graph kept for later batches has its
        tensors rewritten by them (:meth:`adopt`), which must not reach the frame prefix cache."""
        self.prefix_keys, self.prefix_values = self.prefix_keys.clone(), self.prefix_values.clone()

    def adopt(self, tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
              index: torch.Tensor) -> None:
        """Move this batch's prefix and own keys/values into ``tensors`` (a kept graph's, same
        shapes; :meth:`static_tensors` of the layer it was captured on) and use those from now on,
        so that graph replays on this batch."""
        for dst, src in zip(tensors, self.static_tensors(), strict=True):
            if dst.shape != src.shape:
                raise ValueError(f"kept graph tensor {tuple(dst.shape)} does not fit this batch's {tuple(src.shape)}")
            dst.copy_(src)
        self.prefix_keys, self.prefix_values, self._k_buf, self._v_buf = tensors
        self.make_static(index)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        n = key_states.shape[-2]
        if self._index is not None and self._k_buf is not None and self._v_buf is not None:
            # no Python-side position: the write lands where the device tensor says
            self._k_buf.index_copy_(2, self._index, key_states)
            self._v_buf.index_copy_(2, self._index, value_states)
            return self._k_buf, self._v_buf
        if not self.capacity or key_states.requires_grad or self._fill + n > self.capacity:
            if self._k_buf is not None:  # outgrew the buffer: continue from what it holds
                self._k_buf = self._v_buf = None
            return super().update(key_states, value_states, *args, **kwargs)
        if self._k_buf is None:
            b, h, _, d = key_states.shape
            # zeros, not empty: the attention reads the whole buffer and masks its unwritten tail
            # (own_buffers), where uninitialised memory could hold NaNs that a zero weight keeps
            self._k_buf = key_states.new_zeros(b, h, self.capacity, d)
            self._v_buf = value_states.new_zeros(b, h, self.capacity, value_states.shape[-1])
            self.dtype, self.device, self.is_initialized = key_states.dtype, key_states.device, True
        assert self._v_buf is not None
        self._k_buf[:, :, self._fill:self._fill + n] = key_states
        self._v_buf[:, :, self._fill:self._fill + n] = value_states
        self._fill += n
        self.keys, self.values = self._k_buf[:, :, :self._fill], self._v_buf[:, :, :self._fill]
        return self.keys, self.values

    def own_length(self) -> int:
        return super().get_seq_length()

    def own_buffers(self) -> tuple[torch.Tensor, torch.Tensor, int] | None:
        """The preallocated own keys/values whole, (B, kv heads, capacity, d) each, and how many
        positions hold tokens; None where they are not in use. The keys ``update`` returns are a
        slice of these, strided in the position dimension: CPU matmuls in bfloat16 copy such a
        slice to make it contiguous (every row's keys and values, at every step), while the whole
        buffer is contiguous already and its unwritten tail costs only a masked column each."""
        if self._k_buf is None or self._v_buf is None:
            return None
        return self._k_buf, self._v_buf, self._fill

    def get_seq_length(self) -> int:
        return self.prefix_keys.shape[-2] + self.own_length()

    def get_mask_sizes(self, query_length: Any, *args: Any) -> tuple[int, int]:
        q = query_length.shape[0] if isinstance(query_length, torch.Tensor) else int(query_length)
        return self.get_seq_length() + q, 0


def shared_prefix_cache(prefix_cache: DynamicCache, config: Any, capacity: int = 0,
                        prefix_kernel: str = "auto") -> DynamicCache:
    """A cache for a batch of rows that all start with ``prefix_cache`` (batch 1), sharing it;
    ``capacity``: the rows' own tokens to preallocate (0: grow by concatenation);
    ``prefix_kernel``: how the prefix part is computed (:data:`PREFIX_KERNELS`, :func:`prefix_attention`)."""
    cache = DynamicCache(config=config)
    cache.layers = [SharedPrefixLayer(layer.keys, layer.values, capacity, prefix_kernel)
                    for layer in prefix_cache.layers]
    return cache


def _layer_of(module: torch.nn.Module, cache: DynamicCache | None = None) -> SharedPrefixLayer | None:
    if cache is None:
        cache = _ACTIVE.get()
    idx = getattr(module, "layer_idx", None)
    if cache is None or idx is None or idx >= len(cache.layers):
        return None
    layer = cache.layers[idx]
    return layer if isinstance(layer, SharedPrefixLayer) else None


# The keyword under which a forward may hand the attention function its shared-prefix cache (the
# model passes unknown keywords down to the attention): torch.compile traces that, while reading
# the context variable below would break its graph at every layer
CACHE_KWARG = "vlm3_shared_cache"

# The cache of the generate call in progress in this thread/context (two nodes' workers in one
# process generate at the same time on different models: a context variable keeps them apart)
_ACTIVE: contextvars.ContextVar[DynamicCache | None] = contextvars.ContextVar("vlm3_shared_prefix", default=None)


def active(cache: DynamicCache) -> AbstractContextManager[DynamicCache]:
    """Context manager: attention layers read the shared prefix of ``cache`` while it is open."""
    return scoped(_ACTIVE, cache)


def shared_prefix_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                            **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention of ``query`` (B, H, q, d) over the shared prefix and the rows' own ``key``/``value``
    (B, Hkv, T, d); ``attention_mask``: additive (B, 1, q, P + T) over prefix then own tokens.
    Returns (B, q, H, d) like the library's functions."""
    layer = _layer_of(module, kwargs.pop(CACHE_KWARG, None))
    if layer is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    pk, pv = layer.prefix_keys, layer.prefix_values              # (1, Hkv, P, d)
    b, _, q, d = query.shape
    if torch.is_grad_enabled() and (query.requires_grad or pk.requires_grad):
        # training (vlm3_ros.training.objective): the prefix broadcast to the rows as a view and
        # one fused SDPA call, whose kernel neither materialises the (rows x queries x prefix)
        # scores nor keeps them for the backward pass; the prefix's gradient sums over the rows
        k_all = torch.cat([pk.expand(b, -1, -1, -1), key], dim=2)
        v_all = torch.cat([pv.expand(b, -1, -1, -1), value], dim=2)
        if attention_mask is not None:
            mask = attention_mask[:, :, -q:, :]
        else:  # causal within the rows' own tokens (aligned at the end), the prefix fully visible
            t = key.shape[2]
            mask = torch.ones(q, pk.shape[2] + t, dtype=torch.bool, device=query.device)
            mask[:, pk.shape[2]:] = torch.ones(q, t, dtype=torch.bool, device=query.device).tril(t - q)
        return sdpa_attention_forward(module, query, k_all, v_all, mask, dropout=dropout, scaling=scaling, **kwargs)
    scale = scaling if scaling is not None else d ** -0.5
    m = attention_mask[:, :, -q:, :] if attention_mask is not None else None   # (B, 1, q, P + T)
    valid = None
    buffers = layer.own_buffers()
    if buffers is not None and buffers[2] == key.shape[2]:   # key is the buffers' written part
        key, value, valid = buffers
    return _rows_attention(query, key, value, m, pk, pv, scale, valid, layer.prefix_kernel), None


# How the prefix part is computed: "fused", a kernel that returns the log-sum-exp and never writes
# the (queries x prefix) scores; "materialized", the scores written once and softmaxed in place;
# "auto", the one measured faster where it was measured (bench/prefix_kernel_bench.py)

# PyTorch's fused kernels that return the log-sum-exp (None where a build lacks one): the CPU flash
# kernel (PyTorch >= 2.2) and CUDA's memory-efficient attention (float32, float16 and bfloat16)
_CPU_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_CUDA_EFFICIENT = getattr(torch.ops.aten, "_scaled_dot_product_efficient_attention", None)


def fused_prefix_kernel(device: torch.device, dtype: torch.dtype, kernel: str = "auto") -> Any:
    """The fused kernel the prefix part runs on for ``kernel`` (:data:`PREFIX_KERNELS`), or None
    for materialised scores (also for "flex", whose prefix part is inside its FlexAttention call:
    flex_prefix.py). "auto": on CUDA the fused kernel; on a CPU the fused kernel in float32 only,
    materialised scores in bfloat16 (the faster of the two where bench/prefix_kernel_bench.py
    measured them)."""
    if kernel == "materialized":
        return None
    if device.type == "cpu":
        return _CPU_FLASH if kernel == "fused" or dtype == torch.float32 else None
    if device.type == "cuda":
        return _CUDA_EFFICIENT
    return None


def prefix_attention(q_fold: torch.Tensor, pk: torch.Tensor, pv: torch.Tensor, scale: float,
                     kernel: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of the folded queries (Hkv, N, d) over the prefix alone: the output (Hkv, N, d)
    and the log-sum-exp of each query's scaled scores (Hkv, N, 1), float32.

    A fused kernel never writes the (N x P) scores: for the question prefill of 256 rows x 86
    tokens they are hundreds of MB per layer.
    Materialised: the scores written once, softmaxed in place (any device and dtype)."""
    fused = fused_prefix_kernel(q_fold.device, q_fold.dtype, kernel)
    if fused is not None and fused is _CPU_FLASH:
        o, lse = fused(q_fold[None], pk, pv, scale=scale)[:2]
        return o[0], lse[0].unsqueeze(-1).float()
    if fused is not None:
        # CUDA's memory-efficient kernel: (output, log-sum-exp, philox seed, philox offset); its
        # log-sum-exp may be padded along the queries (to a multiple of 32), hence the slice
        n = q_fold.shape[1]
        o, lse = fused(q_fold[None], pk, pv, None, True, scale=scale)[:2]
        return o[0], lse[0, :, :n].unsqueeze(-1).float()
    s = torch.matmul(q_fold * scale, pk[0].transpose(-1, -2))             # (Hkv, N, P)
    top = s.amax(-1, keepdim=True)
    s.sub_(top).exp_()
    z = s.sum(-1, keepdim=True)
    # the log and the sum with the maximum in float32: in bfloat16 they rounded the log-sum-exp
    # far beyond the rounding of z itself (bench/results/prefix_kernel_cpu.md)
    return torch.matmul(s, pv[0]) / z, z.float().log() + top.float()


def _rows_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, m: torch.Tensor | None,
                    pk: torch.Tensor, pv: torch.Tensor, scale: float, valid: int | None = None,
                    prefix_kernel: str = "auto") -> torch.Tensor:
    """Inference attention of the rows' ``query`` (B, H, q, d) over the prefix ``pk``/``pv``
    (1, Hkv, P, d) and their own ``key``/``value`` (B, Hkv, T, d), of which the first ``valid``
    positions hold tokens (None: all; the rest is masked out); ``m``: the additive mask's
    (B, 1, q, P + valid) or None. Returns (B, q, H, d), contiguous.

    The two parts are combined exactly by their log-sum-exps (cascade attention): the prefix part's
    output o_p and log-sum-exp l_p stand for the whole prefix as one extra score column, so one
    softmax over [own scores s, l_p] gives the own weights w and the prefix's weight w_p, and the
    result is w V + w_p o_p: the same as attention over the concatenated keys."""
    if prefix_kernel == "flex":   # both parts in one FlexAttention call (flex_prefix.py)
        from vlm3_ros.inference.flex_prefix import flex_rows_attention

        return flex_rows_attention(query, key, value, m, pk, pv, scale, valid)
    b, h, q, d = query.shape
    hkv, p = pk.shape[1], pk.shape[2]
    g = h // hkv
    qg = query.reshape(b, hkv, g, q, d)
    # the prefix: every row's queries folded into one (KV head, rows x queries) batch, so the prefix
    # is read once per step, not once per row. Its part of the mask is not added: the engine's
    # rows are [prefix][padding][question], so every row sees the whole prefix (the padding lies
    # in the rows' own part).
    q_fold = qg.permute(1, 0, 2, 3, 4).reshape(hkv, b * g * q, d)
    o_pre, lse_pre = prefix_attention(q_fold, pk, pv, scale, prefix_kernel)
    o_pre = o_pre.view(hkv, b, g, q, d).permute(1, 0, 2, 3, 4)              # (B, Hkv, g, q, d)
    lse_pre = lse_pre.view(hkv, b, g, q, 1).permute(1, 0, 2, 3, 4)
    # the rows' own tokens (question and answer, T of them, few). The g query heads of a KV head
    # are folded into one (g x q, d) matrix per row and KV head, so each product is one plain
    # batched matmul: broadcasting the keys over the g heads instead made matmul copy them g
    # times per step, and most of a 256-row step at the 4B's widths went into those copies.
    # Few ops on purpose: on a GPU a decode step is bound by launching them (docs/engine.md).
    t = key.shape[2]
    tv = t if valid is None else valid
    s_own = torch.matmul(qg.reshape(b, hkv, g * q, d), key.transpose(-1, -2))
    s_own = s_own.view(b, hkv, g, q, t).float().mul_(scale)                 # (B, Hkv, g, q, T), float32
    low = torch.finfo(torch.float32).min
    if m is not None:
        s_own[..., :tv].add_(m[..., p:p + tv].unsqueeze(2))                  # padding (B, 1, 1, q, valid)
    else:  # no padding anywhere: causal within the rows' own tokens, the prefix fully visible
        causal = torch.ones(q, tv, dtype=torch.bool, device=query.device).tril(tv - q)
        s_own[..., :tv].masked_fill_(~causal, low)
    if tv < t:   # a buffer's unwritten tail
        s_own[..., tv:] = low
    w = torch.softmax(torch.cat([s_own, lse_pre], dim=-1), dim=-1)         # (B, Hkv, g, q, T + 1)
    # the weights in the values' dtype, as the materialised prefix part's (bfloat16 and CUDA): in
    # bfloat16, a float32 copy of every row's values at every step would cost more than the rest
    o_own = torch.matmul(w[..., :t].reshape(b, hkv, g * q, t).to(value.dtype), value).view(b, hkv, g, q, d)
    out = (o_own + o_pre * w[..., t:]).to(query.dtype).reshape(b, h, q, d)
    return out.transpose(1, 2).contiguous()


AttentionInterface.register(NAME, shared_prefix_attention)
AttentionMaskInterface.register(NAME, eager_mask)
