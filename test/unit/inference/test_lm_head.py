"""The greedy token from vocabulary slices (vlm3_ros/inference/lm_head.py) is torch.argmax of the
full logits: random layers, slices that do not divide the vocabulary, ties across and within
slices, banned ids (the benchmarks' forced answer lengths), with the plain product and with the
weight reordered for oneDNN; the reordered copy follows the weight when it changes."""

from __future__ import annotations

import pytest
import torch

from vlm3_ros.inference import lm_head
from vlm3_ros.inference.lm_head import GreedyHead, greedy_tokens, head_for, sliceable

PACKS = (False, True)


@pytest.mark.parametrize("pack", PACKS)
@pytest.mark.parametrize("rows, vocab, width, slice_tokens", [(1, 1000, 16, 64), (7, 5003, 32, 512),
                                                               (33, 20000, 64, 4096), (4, 100, 8, 1000),
                                                               (300, 9000, 64, 1024)])
def test_equals_argmax_of_the_full_logits(rows: int, vocab: int, width: int, slice_tokens: int, pack: bool) -> None:
    g = torch.Generator().manual_seed(rows * vocab)
    weight = torch.randn(vocab, width, generator=g)
    hidden = torch.randn(rows, width, generator=g)
    want = torch.nn.functional.linear(hidden, weight).argmax(-1)
    assert torch.equal(greedy_tokens(hidden, weight, slice_tokens=slice_tokens, pack=pack), want)
    # a strided view of the hidden states (the engine passes the last position of each row)
    seq = torch.randn(rows, 3, width, generator=g)
    assert torch.equal(GreedyHead(weight, slice_tokens, pack)(seq[:, -1, :]),
                       torch.nn.functional.linear(seq[:, -1, :], weight).argmax(-1))


@pytest.mark.parametrize("pack", PACKS)
def test_ties_go_to_the_lowest_id_within_and_across_slices(pack: bool) -> None:
    weight = torch.zeros(10, 2)
    weight[[3, 4, 8], 0] = 1.0          # tokens 3 and 4 share a slice of 4, token 8 is in a later one
    hidden = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert greedy_tokens(hidden, weight, slice_tokens=4, pack=pack).tolist() == [3, 0] == \
        torch.nn.functional.linear(hidden, weight).argmax(-1).tolist()
    assert greedy_tokens(hidden, weight, banned=[3, 4], slice_tokens=4, pack=pack).tolist() == [8, 0]
    # a later slice that only equals the best does not take it; one that beats it does
    weight[9, 0] = 2.0
    assert greedy_tokens(hidden, weight, slice_tokens=4, pack=pack).tolist() == [9, 0]


@pytest.mark.parametrize("pack", PACKS)
def test_banned_ids_are_never_chosen(pack: bool) -> None:
    g = torch.Generator().manual_seed(0)
    weight, hidden = torch.randn(3000, 16, generator=g), torch.randn(5, 16, generator=g)
    first = greedy_tokens(hidden, weight, slice_tokens=700, pack=pack)
    banned = torch.unique(first)
    logits = torch.nn.functional.linear(hidden, weight)
    logits[:, banned] = float("-inf")
    again = greedy_tokens(hidden, weight, banned=banned, slice_tokens=700, pack=pack)
    assert torch.equal(again, logits.argmax(-1)) and not torch.isin(again, banned).any()


def test_reordering_is_used_where_onednn_has_it_and_only_for_float32() -> None:
    weight = torch.randn(5000, 64)
    head = GreedyHead(weight)
    if torch.backends.mkldnn.is_available() and torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        assert head.packed and head.min_rows == lm_head.MIN_ROWS_PACKED
    assert not GreedyHead(weight, pack=False).packed
    plain = GreedyHead(weight.to(torch.bfloat16))
    assert not plain.packed and plain.min_rows == lm_head.MIN_ROWS
    big = torch.zeros(1, 64).expand(lm_head.PACK_MAX_BYTES // (4 * 64) + 1, 64)  # over the bound, no memory
    assert not GreedyHead(big).packed


def test_the_reordered_copy_follows_the_weight() -> None:
    layer = torch.nn.Linear(64, 3000, bias=False)
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(20, 64, generator=g)
    head = head_for(layer.weight)
    assert head_for(layer.weight) is head                 # built once per weight
    assert torch.equal(head(hidden), layer(hidden).argmax(-1))
    with torch.no_grad():                                 # an optimizer step: in place
        layer.weight.mul_(-1.0)
    assert torch.equal(head_for(layer.weight)(hidden), layer(hidden).argmax(-1))
    assert head_for(layer.weight) is not head


def test_only_plain_bias_free_linear_layers_are_sliced() -> None:
    assert sliceable(torch.nn.Linear(4, 10, bias=False))
    assert not sliceable(torch.nn.Linear(4, 10, bias=True))
    assert not sliceable(torch.nn.Sequential(torch.nn.Linear(4, 10, bias=False)))
    with pytest.raises(ValueError):
        greedy_tokens(torch.zeros(1, 2), torch.zeros(3, 2), slice_tokens=0)
