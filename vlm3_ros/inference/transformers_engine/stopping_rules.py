"""When a row's decoding stops besides its end-of-turn token: the answer is complete under its
question's rule, and (benchmarks on random weights) an end of turn held back to force a length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vlm3_ros.contract import answers as contract_answers


def closer_mask(tokenizer: Any, vocab_size: int, device: Any) -> Any:
    """Bool per vocabulary id: the token's text holds '>' or ')' (it can end an answer)."""
    import torch

    n = max(len(tokenizer), vocab_size)
    mask = torch.zeros(n, dtype=torch.bool)
    # byte-level BPE keeps printable ASCII as itself in the token strings; a superset (special
    # tokens such as <|im_end|>) only costs a decode of that row
    ids = [i for tok, i in tokenizer.get_vocab().items() if ">" in tok or ")" in tok]
    mask[torch.tensor(ids, dtype=torch.long)] = True
    return mask.to(device)


class AnswerEnd:
    """Stopping criterion: a row is done once its reply holds the whole answer under its
    question's ``answer_end`` rule (contract.answers.answer_complete), so a batch does not wait for
    the ``<|im_end|>`` the parser never reads. Only rows whose last token can close an answer ('>'
    or ')' in its text, :func:`closer_mask`) are decoded, so a step costs a tensor lookup, not B
    detokenisations."""

    def __init__(self, tokenizer: Any, closers: Any, prompt_len: int, rules: Sequence[str]) -> None:
        self.tokenizer, self.closers, self.prompt_len, self.rules = tokenizer, closers, prompt_len, list(rules)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] <= self.prompt_len:
            return done
        maybe = self.closers[input_ids[:, -1]].nonzero().flatten().tolist()
        for i in maybe:
            if i < len(self.rules) and self.rules[i]:
                text = self.tokenizer.decode(input_ids[i, self.prompt_len:].tolist(), skip_special_tokens=True)
                done[i] = contract_answers.answer_complete(text, self.rules[i])
        return done


class HoldEos:
    """Logits processor for benchmarks on random weights: end-of-turn ids are not chosen before
    ``min_new`` new tokens, so every answer has the forced length. It writes only the few eos
    columns in place; transformers' ``min_new_tokens`` processor rewrites the whole (rows x
    vocabulary) score matrix every step, a cost real serving never pays."""

    def __init__(self, eos_ids: Sequence[int], prompt_len: int, min_new: int) -> None:
        self.eos_ids, self.prompt_len, self.min_new = list(eos_ids), prompt_len, min_new

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[1] - self.prompt_len < self.min_new:
            scores[:, self.eos_ids] = float("-inf")
        return scores
