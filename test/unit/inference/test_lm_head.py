"""The sliced greedy token (vlm3_ros/inference/lm_head.py) is torch.argmax of the full logits:
random layers, slices that do not divide the vocabulary, ties across and within slices, and
banned ids (the benchmarks' forced answer lengths)."""

from __future__ import annotations

import pytest
import torch

from vlm3_ros.inference.lm_head import greedy_tokens, sliceable


@pytest.mark.parametrize("rows, vocab, width, slice_tokens", [(1, 1000, 16, 64), (7, 5003, 32, 512),
                                                               (33, 20000, 64, 8192), (4, 100, 8, 1000)])
def test_equals_argmax_of_the_full_logits(rows: int, vocab: int, width: int, slice_tokens: int) -> None:
    g = torch.Generator().manual_seed(rows * vocab)
    weight = torch.randn(vocab, width, generator=g)
    hidden = torch.randn(rows, width, generator=g)
    want = torch.nn.functional.linear(hidden, weight).argmax(-1)
    assert torch.equal(greedy_tokens(hidden, weight, slice_tokens=slice_tokens), want)


def test_ties_go_to_the_lowest_id_within_and_across_slices() -> None:
    weight = torch.zeros(10, 2)
    weight[[3, 4, 8], 0] = 1.0          # tokens 3 and 4 share a slice of 4, token 8 is in a later one
    hidden = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert greedy_tokens(hidden, weight, slice_tokens=4).tolist() == [3, 0] == \
        torch.nn.functional.linear(hidden, weight).argmax(-1).tolist()
    assert greedy_tokens(hidden, weight, banned=[3, 4], slice_tokens=4).tolist() == [8, 0]


def test_banned_ids_are_never_chosen() -> None:
    g = torch.Generator().manual_seed(0)
    weight, hidden = torch.randn(3000, 16, generator=g), torch.randn(5, 16, generator=g)
    first = greedy_tokens(hidden, weight, slice_tokens=700)
    banned = torch.unique(first)
    logits = torch.nn.functional.linear(hidden, weight)
    logits[:, banned] = float("-inf")
    again = greedy_tokens(hidden, weight, banned=banned, slice_tokens=700)
    assert torch.equal(again, logits.argmax(-1)) and not torch.isin(again, banned).any()


def test_only_plain_bias_free_linear_layers_are_sliced() -> None:
    assert sliceable(torch.nn.Linear(4, 10, bias=False))
    assert not sliceable(torch.nn.Linear(4, 10, bias=True))
    assert not sliceable(torch.nn.Sequential(torch.nn.Linear(4, 10, bias=False)))
    with pytest.raises(ValueError):
        greedy_tokens(torch.zeros(1, 2), torch.zeros(3, 2), slice_tokens=0)
