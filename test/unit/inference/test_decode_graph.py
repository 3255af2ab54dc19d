"""Static answer steps (vlm3_ros/inference/decode_graph.py): the mask and index bookkeeping of one
batch, the static cache update, and the node parameter that selects the mode."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vlm3_ros.inference import shared_prefix as sp
from vlm3_ros.inference.decode_graph import DECODE_GRAPHS, StaticDecode
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
    spec = next(p for p in PARAMS if p.name == "model.decode_graph")
    assert tuple(spec.choices) == DECODE_GRAPHS and spec.default == "static"
    cfg = build_config({"backend": "transformers", "enabled_tasks": ["depth"], "model.depth_path": "/models/depth",
                        "model.decode_graph": "cuda"})
    assert backend_config(cfg, "depth").decode_graph == "cuda"
