"""Static answer steps (vlm3_ros/inference/decode_graph.py): the mask and index bookkeeping of one
batch, the static cache update, and the node parameter that selects the mode."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vlm3_ros.inference import shared_prefix as sp
from vlm3_ros.inference.decode_graph import GraphPool, StaticDecode
from vlm3_ros.inference.transformers_engine.engine_settings import DECODE_GRAPHS, TransformersConfig
from vlm3_ros.params.config import build_config
from vlm3_ros.params.mapping import backend_config
from vlm3_ros.params.table import PARAMS

STATS = ("static_steps", "graph_captures", "graph_replays", "graph_failures")


def _cache(b: int = 2, written: int = 3, capacity: int = 6) -> Any:
    """A one-layer shared-prefix cache whose own buffers hold ``written`` positions per row."""
    layer = sp.SharedPrefixLayer(torch.randn(1, 1, 4, 2), torch.randn(1, 1, 4, 2), capacity)
    layer.update(torch.randn(b, 1, written, 2), torch.randn(b, 1, written, 2))
    return type("Cache", (), {"layers": [layer]})()


def test_static_steps_open_one_mask_column_and_write_at_the_index() -> None:
    cache = _cache()
    layer = cache.layers[0]
    # prefix 4 tokens, then row 0's padding (one position) and both rows' question tokens
    mask2d = torch.tensor([[1, 1, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        k = torch.full((2, 1, 1, 2), float(ids[0, 0]))
        keys, _ = layer.update(k, k)
        seen.append((mask.clone(), keys.clone()))
        return ids.float()

    stats = dict.fromkeys(STATS, 0)
    static = StaticDecode(forward, cache, mask2d, 4, 3, torch.float32, graphs=True, stats=stats)
    low = torch.finfo(torch.float32).min
    for step, token in enumerate((7, 8)):
        out = static.step(torch.full((2, 1), token), torch.zeros(1, 2, 1, dtype=torch.long))
        assert out.shape == (2, 1)
        mask, keys = seen[-1]
        assert mask.shape == (2, 1, 1, 4 + 6)   # prefix + the whole own buffer, every step the same
        visible = (mask[:, 0, 0] == 0).int()
        want = torch.cat([mask2d, torch.ones(2, step + 1, dtype=torch.long),
                          torch.zeros(2, 6 - 3 - step - 1, dtype=torch.long)], dim=1)
        assert torch.equal(visible, want)    # the padding stays hidden, the written positions open
        assert mask[0, 0, 0, 4] == low
        assert keys.shape == (2, 1, 6, 2)    # the whole buffer, written at the device index
        assert torch.all(keys[:, :, 3 + step] == token)
    assert stats["static_steps"] == 2 and stats["graph_captures"] == 0   # no capture off CUDA


def test_static_update_needs_the_preallocated_buffers() -> None:
    layer = sp.SharedPrefixLayer(torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2), capacity=0)
    with pytest.raises(RuntimeError, match="preallocated buffers"):
        layer.make_static(torch.zeros(1, dtype=torch.long))


def test_the_node_parameter_selects_the_mode() -> None:
    """cuda is the default (graphs where the device is CUDA, static steps elsewhere: measured faster
    with naive's tokens on an H200, docs/engine.md); the node parameters reach the backend."""
    spec = next(p for p in PARAMS if p.name == "model.decode_graph")
    assert tuple(spec.choices) == DECODE_GRAPHS and spec.default == "cuda"
    assert TransformersConfig("/models/depth").decode_graph == spec.default
    cfg = build_config({"backend": "transformers", "enabled_tasks": ["depth"], "model.depth_path": "/models/depth",
                        "model.decode_graph": "static", "model.graph_slots": 5})
    assert backend_config(cfg, "depth").decode_graph == "static"
    assert backend_config(cfg, "depth").graph_slots == 5


def test_graph_pool_keeps_the_most_recent_slots() -> None:
    pool = GraphPool(2)
    for key in ("a", "b"):
        pool.keep(key, key)   # any object stands for a kept graph here
    assert pool.take("a") == "a"      # "a" is now the most recent
    pool.keep("c", "c")               # evicts "b", the least recently used
    assert pool.take("b") is None and pool.take("a") == "a" and pool.take("c") == "c" and len(pool) == 2
    none = GraphPool(0)
    none.keep("a", "a")
    assert none.take("a") is None and len(none) == 0


def test_a_kept_graph_of_another_shape_is_refused() -> None:
    layer = sp.SharedPrefixLayer(torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2), capacity=3)
    layer.update(torch.ones(2, 1, 1, 2), torch.ones(2, 1, 1, 2))
    wrong = (torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2), torch.zeros(2, 1, 5, 2), torch.zeros(2, 1, 5, 2))
    with pytest.raises(ValueError, match="does not fit"):
        layer.adopt(wrong, torch.zeros(1, dtype=torch.long))


def test_a_batch_is_padded_only_onto_a_kept_graph_that_fits() -> None:
    pool = GraphPool(8)
    for rows, written in ((8, 72), (8, 80), (16, 72), (40, 72)):   # keys as StaticDecode makes them
        pool.keep((rows, 1200, written, written + 25, 36, "bf16", "cuda"), (rows, written))
    assert pool.fitting_shape(8, 1200, 70, 25) == (8, 72)       # the smallest kept one that fits
    assert pool.fitting_shape(8, 1200, 73, 25) == (8, 80)
    assert pool.fitting_shape(8, 1200, 64, 25) == (8, 64)       # 72 is a full step longer: no padding
    assert pool.fitting_shape(8, 1200, 81, 25) == (8, 81)       # nothing longer kept
    assert pool.fitting_shape(5, 1200, 70, 25) == (8, 72)       # rows padded: 8 <= 2 x 5
    assert pool.fitting_shape(3, 1200, 70, 25) == (3, 70)       # 8 > 2 x 3: its own graph
    assert pool.fitting_shape(20, 1200, 72, 25) == (20, 72)     # 40 rows is more than 16 more
    assert pool.fitting_shape(24, 1200, 72, 25) == (40, 72)     # 16 more, and within twice
    assert pool.fitting_shape(8, 1100, 70, 25) == (8, 70)       # another prefix length,
    assert pool.fitting_shape(8, 1200, 70, 30) == (8, 70)       # other answer lengths: their own graphs
