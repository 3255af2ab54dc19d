"""The shared-prefix attention (vlm3_ros/inference/shared_prefix.py) equals SDPA over the prefix
replicated per row and concatenated with the rows' own keys: the question prefill with padding,
a decode step, the unmasked causal case; the prefix part through PyTorch's fused CPU kernel and
through materialised scores (any device), and both parts as one FlexAttention call (flex_prefix.py,
run eagerly here); float32 and bfloat16."""

from __future__ import annotations

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from vlm3_ros.inference import shared_prefix as sp

MIN = torch.finfo(torch.float32).min


class _Attention(torch.nn.Module):
    """What the library's attention functions read from a text layer's attention module."""

    layer_idx = 0
    num_key_value_groups = 2
    is_causal = True


def _case(rows: int, q: int, own: int, pad: int, dtype: torch.dtype, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    heads, kv_heads, width, prefix = 4, 2, 16, 37

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(dtype)

    pk, pv = rnd(1, kv_heads, prefix, width), rnd(1, kv_heads, prefix, width)
    query, key, value = rnd(rows, heads, q, width), rnd(rows, kv_heads, own, width), rnd(rows, kv_heads, own, width)
    # [prefix][padding][question]: each row's first `pad * row` own positions are padding; causal after
    mask = torch.zeros(rows, 1, q, prefix + own)
    mask[..., prefix:] = torch.full((q, own), MIN).triu(own - q + 1)
    for r in range(rows):
        mask[r, :, :, prefix:prefix + min(pad * r, own - q)] = MIN
    return pk, pv, query, key, value, mask.to(dtype)


def _reference(pk, pv, query, key, value, mask) -> torch.Tensor:
    rows = query.shape[0]
    k = torch.cat([pk.expand(rows, -1, -1, -1), key], dim=2)
    v = torch.cat([pv.expand(rows, -1, -1, -1), value], dim=2)
    return sdpa_attention_forward(_Attention(), query, k, v, mask)[0]


@pytest.mark.parametrize("kernel", ["auto", "fused", "materialized", "flex"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("rows, q, own, pad", [(5, 9, 9, 2), (6, 1, 14, 3), (3, 4, 4, 0)])
def test_equals_sdpa_over_the_replicated_prefix(rows: int, q: int, own: int, pad: int, dtype: torch.dtype,
                                                tol: float, kernel: str) -> None:
    # every pinned PyTorch build has the fused CPU kernel: "fused" must not quietly run the other path
    assert kernel != "fused" or sp._CPU_FLASH is not None, "no fused CPU attention with log-sum-exp in this build"
    pk, pv, query, key, value, mask = _case(rows, q, own, pad, dtype, seed=rows * q + own)
    cache = sp.shared_prefix_cache(type("C", (), {"layers": [type("L", (), {"keys": pk, "values": pv})()]})(),
                                   config=None, prefix_kernel=kernel)
    want = _reference(pk, pv, query, key, value, mask)
    with torch.inference_mode(), sp.active(cache):
        got = sp.shared_prefix_attention(_Attention(), query, key, value, mask)[0]
        unmasked = sp.shared_prefix_attention(_Attention(), query, key, value, None)[0] if not pad else None
    assert got.shape == want.shape == (rows, q, 4, 16) and got.dtype == dtype
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)
    if unmasked is not None:   # no padding: the causal rule alone gives the same attention
        torch.testing.assert_close(unmasked.float(), want.float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("kernel", ["fused", "materialized"])
def test_bfloat16_prefix_log_sum_exp_is_accurate(kernel: str) -> None:
    """At the 4B's prefix length the log-sum-exp weighs the prefix against the rows' own tokens:
    in bfloat16 it stays within 0.01 of float64 (rounded in bfloat16 it was off by 0.035)."""
    # every pinned PyTorch build has the fused CPU kernel: "fused" must not quietly run the other path
    assert kernel != "fused" or sp._CPU_FLASH is not None, "no fused CPU attention with log-sum-exp in this build"
    g = torch.Generator().manual_seed(3)
    q, pk, pv = (torch.randn(*shape, generator=g).bfloat16() for shape in ((8, 64, 128), (1, 8, 1136, 128),
                                                                          (1, 8, 1136, 128)))
    scale = 128 ** -0.5
    s = torch.matmul(q.double() * scale, pk[0].double().transpose(-1, -2))
    with torch.inference_mode():
        out, lse = sp.prefix_attention(q, pk, pv, scale, kernel)
    assert float((lse.double() - torch.logsumexp(s, -1, keepdim=True)).abs().max()) < 0.01
    assert float((out.double() - torch.softmax(s, -1) @ pv[0].double()).abs().max()) < 0.01


def test_prefix_kernel_choice() -> None:
    """"auto" is the fused CPU kernel in float32 only, and CUDA's fused kernel in any dtype (measured
    faster on an H200: bench/results/prefix_kernel_cuda.md); an unknown name is refused."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert sp.fused_prefix_kernel(cpu, torch.float32) is sp._CPU_FLASH
    assert sp.fused_prefix_kernel(cpu, torch.bfloat16) is None
    assert sp.fused_prefix_kernel(cpu, torch.bfloat16, "fused") is sp._CPU_FLASH
    assert sp.fused_prefix_kernel(cpu, torch.float32, "materialized") is None
    assert sp.fused_prefix_kernel(cuda, torch.bfloat16) is sp._CUDA_EFFICIENT
    assert sp.fused_prefix_kernel(cuda, torch.float32, "fused") is sp._CUDA_EFFICIENT
    assert sp.fused_prefix_kernel(cuda, torch.bfloat16, "materialized") is None
    with pytest.raises(ValueError, match="prefix_kernel must be one of"):
        sp.SharedPrefixLayer(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), prefix_kernel="flash")


def test_layers_without_a_shared_prefix_run_sdpa() -> None:
    pk, _, query, key, value, mask = _case(2, 3, 3, 0, torch.float32, seed=1)
    got = sp.shared_prefix_attention(_Attention(), query, key, value, mask[..., pk.shape[2]:])[0]
    want = sdpa_attention_forward(_Attention(), query, key, value, mask[..., pk.shape[2]:])[0]
    assert torch.equal(got, want)


@pytest.mark.parametrize("kernel", ["auto", "flex"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.bfloat16, 2e-2)])
def test_preallocated_own_keys_are_read_whole_with_their_unwritten_tail_masked(dtype: torch.dtype, tol: float,
                                                                               kernel: str) -> None:
    """The engine's layers write the rows' own keys/values into buffers sized for question +
    answer; the attention reads the whole (contiguous) buffer and masks the positions not
    written yet. Garbage in that tail must not change the result."""
    rows, q_len, own = 4, 5, 6
    pk, pv, query, key, value, mask = _case(rows, q_len, own, 1, dtype, seed=11)
    prefix = type("C", (), {"layers": [type("L", (), {"keys": pk, "values": pv})()]})()
    cache = sp.shared_prefix_cache(prefix, config=None, capacity=own + 7, prefix_kernel=kernel)
    layer = cache.layers[0]
    with torch.inference_mode(), sp.active(cache):
        # the question prefill (5 own tokens), then one decode step: 6 of the 13 positions written
        k1, v1 = layer.update(key[:, :, :q_len], value[:, :, :q_len])
        sp.shared_prefix_attention(_Attention(), query, k1, v1, mask[..., :-1])
        k2, v2 = layer.update(key[:, :, q_len:], value[:, :, q_len:])
        whole_k, whole_v, written = layer.own_buffers()
        assert written == own and whole_k.shape[2] == own + 7 and k2.data_ptr() == whole_k.data_ptr()
        whole_k[:, :, own:] = 100.0   # what an unmasked tail would add
        whole_v[:, :, own:] = -100.0
        step_q, step_mask = query[:, :, -1:], mask[:, :, -1:]
        got = sp.shared_prefix_attention(_Attention(), step_q, k2, v2, step_mask)[0]
    want = _reference(pk, pv, step_q, key, value, step_mask)
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


def test_common_lead_length_leaves_every_row_its_last_token() -> None:
    from vlm3_ros.inference.transformers_engine.prefix_engine import common_lead_length

    assert common_lead_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9, 4]]) == 2
    assert common_lead_length([[1, 2, 3], [1, 2, 3, 4]]) == 2     # the shorter row keeps its last token
    assert common_lead_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert common_lead_length([[7, 2], [8, 2]]) == 0
    assert common_lead_length([[1, 2, 3]]) == 0                   # one question shares nothing
