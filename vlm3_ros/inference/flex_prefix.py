"""The shared-prefix attention as one FlexAttention call per layer (``prefix_kernel: flex``).

The other prefix kernels (:mod:`vlm3_ros.inference.shared_prefix`) attend to the prefix and to the
rows' own keys in two parts and merge them by their log-sum-exps. Here both parts are one
attention: every row's queries, folded into one sequence (batch 1), attend to one key sequence,
the prefix followed by every row's own keys, under a block mask that lets a row's queries see the
whole prefix and only their own row's written, unmasked keys. Blocks of other rows' keys are
skipped, so the work is the two-part attention's; compiled (``torch.compile``: the compiled answer
step, or inductor's flex kernel on CUDA) the whole is one generated kernel per layer. Run eagerly
(tests on a CPU) PyTorch evaluates it unfused, as a reference.
"""

from __future__ import annotations

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention


def flex_rows_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, m: torch.Tensor | None,
                        pk: torch.Tensor, pv: torch.Tensor, scale: float, valid: int | None = None) -> torch.Tensor:
    """Attention of the rows' ``query`` (B, H, q, d) over the prefix ``pk``/``pv`` (1, Hkv, P, d)
    and their own ``key``/``value`` (B, Hkv, T, d), of which the first ``valid`` positions hold
    tokens (None: all); ``m``: the additive mask (B, 1, q, P + valid or more) or None (causal
    within the own tokens). Returns (B, q, H, d), contiguous, as ``shared_prefix._rows_attention``."""
    b, h, q, d = query.shape
    hkv, p = pk.shape[1], pk.shape[2]
    t = key.shape[2]
    tv = t if valid is None else valid
    # which own position each row's query may see: written, and open in the mask (padding, causal)
    if m is not None:
        own = m[:, 0, -q:, p:p + tv] > torch.finfo(m.dtype).min / 2              # (B, q, tv)
    else:
        own = torch.ones(q, tv, dtype=torch.bool, device=query.device).tril(tv - q).expand(b, q, tv)
    if tv < t:
        own = torch.cat([own, own.new_zeros(b, q, t - tv)], dim=-1)              # (B, q, T)

    def mask_mod(_b: torch.Tensor, _h: torch.Tensor, qi: torch.Tensor, ki: torch.Tensor) -> torch.Tensor:
        row, i = qi // q, qi % q
        j = (ki - p).clamp(min=0)
        return (ki < p) | ((j // t == row) & own[row, i, j % t])

    n_q, n_kv = b * q, p + b * t
    block = create_block_mask(mask_mod, 1, None, n_q, n_kv, device=query.device)
    k_all = torch.cat([pk[0], key.transpose(0, 1).reshape(hkv, b * t, d)], dim=1)[None]
    v_all = torch.cat([pv[0], value.transpose(0, 1).reshape(hkv, b * t, value.shape[-1])], dim=1)[None]
    q_all = query.transpose(0, 1).reshape(1, h, n_q, d)
    out = flex_attention(q_all, k_all.to(query.dtype), v_all.to(query.dtype), block_mask=block, scale=scale,
                         enable_gqa=hkv != h)
    return out[0].view(h, b, q, -1).permute(1, 2, 0, 3).contiguous()
