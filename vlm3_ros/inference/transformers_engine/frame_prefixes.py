"""Prefilled image prefixes and the frame prefix cache that keeps them for reuse."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Prefix:
    """A prefilled image prefix: its token ids, image grid, KV cache and the mRoPE offset the
    model computed for its images (restored before every forward on this prefix)."""

    key: Hashable
    ids: Any                 # (1, P) long
    grid_thw: Any            # (n_images, 3)
    cache: Any               # DynamicCache after the prefix
    rope_deltas: Any
    image_tokens: tuple[int, ...]


def cache_bytes(cache: Any) -> int:
    """Bytes held by a transformers DynamicCache (its layers' key and value tensors)."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if t is not None and hasattr(t, "nelement"):
                total += t.nelement() * t.element_size()
    return total


@dataclass
class _Entry:
    prefix: Prefix
    text: str                                # the prompt text the prefix renders
    images: tuple[np.ndarray, ...]           # the pixels it was made from (the same-pixels check)
    nbytes: int                              # the prefix KV and the images


class FramePrefixCache:
    """Prefilled prefixes by images key, least recently used evicted beyond ``budget_bytes`` (0:
    keeps nothing). A hit needs the same key, the same pixels and a prompt that starts with the
    same prefix text, so a camera that reuses stamps with other pixels is never served from it.
    Counts hits, misses, evictions and its size in ``stats``."""

    def __init__(self, budget_bytes: int, stats: dict[str, Any]) -> None:
        self.budget = budget_bytes
        self.stats = stats
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0

    def get(self, key: Hashable, images: tuple[np.ndarray, ...], text: str) -> tuple[Prefix, str] | None:
        """The kept prefix for these images and prompt ``text``, or None (a miss, counted)."""
        e = self._entries.get(key)
        if e is not None:
            same = len(e.images) == len(images) and all(
                a is b or (a.shape == b.shape and np.array_equal(a, b)) for a, b in zip(e.images, images, strict=True))
            if same and text.startswith(e.text):
                self._entries.move_to_end(key)
                self.stats["prefix_hits"] += 1
                return e.prefix, e.text
        self.stats["prefix_misses"] += 1
        return None

    def put(self, prefix: Prefix, text: str, images: tuple[np.ndarray, ...]) -> None:
        if self.budget:
            self._drop(prefix.key)
            size = cache_bytes(prefix.cache) + sum(int(im.nbytes) for im in images)
            if size <= self.budget:
                self._entries[prefix.key] = _Entry(prefix, text, tuple(images), size)
                self._bytes += size
                while self._bytes > self.budget:
                    self._drop(next(iter(self._entries)))
                    self.stats["prefix_evictions"] += 1
        self.stats["prefix_cache_kib"] = round(self._bytes / 2**10, 1)

    def keys(self) -> list[Hashable]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
