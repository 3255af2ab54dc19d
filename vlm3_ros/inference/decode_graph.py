"""Answer steps with static shapes, and their capture as one CUDA graph per batch.

On a GPU an answer step is launch-bound: thousands of kernels per forward through the library's
eager decoder layers, each launched by the host, while the GPU work of the step is small
(docs/engine.md, "On a GPU"). A CUDA graph replays the recorded kernels with one launch, but only
if every step has the same shapes and tensor addresses. Here:

- the rows' own keys/values are written at a device-tensor index into the buffers the
  shared-prefix cache preallocated, which are returned whole (``SharedPrefixLayer.make_static``);
- the mask is a 4D additive tensor over prefix + the whole buffer (the library takes a 4D mask
  as it is), whose column for the position being written is opened before each step;
- token ids and positions are copied into fixed input tensors.

Modes (``TransformersConfig.decode_graph``, node parameter ``model.decode_graph``): ``cuda``
(default) captures the step after ``WARMUP`` eager ones as a CUDA graph and replays it for the
rest of the batch on CUDA devices, and runs static steps elsewhere; :class:`GraphPool` keeps the
captured graphs (``graph_slots``) so later batches and frames of the same shapes replay from their
first step. On a CPU a test replays the recorded ops of the step as a graph would
(:mod:`vlm3_ros.testing.replay_graph`). ``static`` runs the fixed-shape steps eagerly on any
device (the same tokens as the dynamic loop; fewer operations per step than it: the cache update
is one indexed copy per layer and the mask is not rebuilt, bench/step_ops.py); a capture that
fails falls back to eager static steps for the batch and is counted; ``off``: the cache grows by
one position per step as transformers' own loop does. The step may be compiled with
torch.compile first (``compile_step``, :mod:`vlm3_ros.inference.transformers_engine.compiled_step`):
the graph then records the compiled step's kernels.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch

LOG = logging.getLogger(__name__)

WARMUP = 2   # eager steps (on a side stream) before the capture: lazy library state is set up by then
# A batch's own tokens may be padded by up to this many to run on a kept graph made for longer
# questions: a depth question's length varies with its coordinates' digits (up to 6 tokens), and
# each length would otherwise be a graph of its own. The padding sits between prefix and question,
# masked, as in batches of unequal questions (the same tokens: test_static_answer_steps_answer_as_naive).
LENGTH_STEP = 8
# A small batch may be padded with copies of its last question (answers dropped) to run on a kept
# graph of more rows: at most twice its rows and at most this many more. A small batch's answer
# step is launch-bound on a GPU, so its extra rows cost little there, while a capture costs about
# as much as three eager steps; the extra rows' prefill grows with them, hence the bounds.
ROW_PAD = 16


class CudaGraph:
    """One CUDA graph: ``capture(fn)`` records ``fn``'s kernels and runs them once, returning its
    output (the tensor every replay rewrites); ``replay()`` runs them again."""

    needs_side_stream = True   # CUDA capture wants its warm-up steps on a side stream

    def __init__(self) -> None:
        self.graph = torch.cuda.CUDAGraph()

    def capture(self, fn: Callable[[], Any]) -> Any:
        with torch.cuda.graph(self.graph):
            out = fn()
        self.graph.replay()   # capture only records
        return out

    def replay(self) -> None:
        self.graph.replay()


def graph_factory(device: Any) -> Callable[[], Any] | None:
    """What records and replays an answer step on ``device``; None where there are no graphs (the
    tests put :class:`vlm3_ros.testing.replay_graph.ReplayGraph` here to check a step's replay
    semantics on a CPU)."""
    return CudaGraph if device.type == "cuda" else None


@dataclass
class _Kept:
    """A captured step and every tensor it reads or writes besides the weights."""

    graph: Any
    out: Any
    ids: Any
    positions: Any
    mask: Any
    index: Any
    layers: list[tuple[Any, Any, Any, Any]]   # per layer: prefix keys, values, own key, value buffers

    def nbytes(self) -> int:
        """The bytes of the tensors it holds (not the graph's own memory pool, which CUDA sizes)."""
        tensors = [self.out, self.ids, self.positions, self.mask, self.index, *(t for ls in self.layers for t in ls)]
        return sum(int(t.numel() * t.element_size()) for t in tensors if hasattr(t, "element_size"))


class GraphPool:
    """Captured answer steps kept for later batches of the same shapes (a backend's; LRU).

    A capture costs the batch its :data:`WARMUP` eager steps plus the capture itself, every batch
    again without this pool (a frame of many points is several batches). A later batch whose
    shapes match (rows, prefix length, own tokens written, buffer capacity: everything the capture
    froze on the host) copies its prefix and own keys/values, mask and inputs into the kept graph's
    tensors and replays from its first step. Each kept graph holds its batch's own key/value
    buffers (rows x capacity x layers) and
    the prefix, so ``slots`` bounds memory; 0 keeps none."""

    def __init__(self, slots: int) -> None:
        self.slots = max(0, int(slots))
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()

    def take(self, key: Hashable) -> _Kept | None:
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
        return kept

    def keep(self, key: Hashable, kept: _Kept) -> None:
        if self.slots == 0:
            return
        self._kept[key] = kept
        self._kept.move_to_end(key)
        while len(self._kept) > self.slots:
            self._kept.popitem(last=False)

    def fitting_shape(self, rows: int, prefix: int, own: int, answer: int) -> tuple[int, int]:
        """The (rows, own length) to pad a batch to so that it runs on a kept graph for this prefix
        length and these answer tokens: own tokens at most :data:`LENGTH_STEP` - 1 more, rows at
        most twice as many and at most :data:`ROW_PAD` more; the smallest such graph (rows x
        length); ``(rows, own)`` itself where none is (no padding without a graph to gain). Keys
        as :class:`StaticDecode` makes them: (rows, prefix, written, capacity, ...)."""
        fits = [(k[0], k[2]) for k in self._kept if k[1] == prefix and k[3] - k[2] == answer
                and own <= k[2] < own + LENGTH_STEP and rows <= k[0] <= min(2 * rows, rows + ROW_PAD)]
        return min(fits, key=lambda f: (f[0] * f[1], f)) if fits else (rows, own)

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)

    def nbytes(self) -> int:
        """The bytes the kept graphs' tensors hold (the ``graph_pool_kib`` diagnostic)."""
        return sum(k.nbytes() for k in self._kept.values() if isinstance(k, _Kept))


class StaticDecode:
    """The answer steps of one batch after its questions' prefill.

    ``forward(ids, mask, positions)`` runs the model on the fixed inputs and returns what the
    greedy loop reads (logits or hidden states); ``cache``: the batch's shared-prefix cache, its
    own buffers allocated (``capacity`` positions) and ``written`` of them filled by the prefill;
    ``mask2d``: the prefill's (B, P + written) attention mask; ``dtype``: the mask's (the model's);
    ``pool``: graphs kept from earlier batches (a hit replays from the first step)."""

    def __init__(self, forward: Callable[[Any, Any, Any], Any], cache: Any, mask2d: Any, P: int, written: int,
                 dtype: Any, graphs: bool, stats: dict[str, Any], pool: GraphPool | None = None) -> None:
        self.forward = forward
        self.stats = stats
        self.P, self.fill = P, written
        B = mask2d.shape[0]
        capacity = cache.layers[0].capacity
        device = mask2d.device
        low = torch.finfo(dtype).min
        # (B, 1, 1, P + capacity): the prefill's padding as it was, the rest closed until written
        self.mask = torch.full((B, 1, 1, P + capacity), low, dtype=dtype, device=device)
        self.mask[:, 0, 0, :P + written] = torch.where(mask2d.bool(), 0.0, low).to(dtype)
        self.index = torch.tensor([written], dtype=torch.long, device=device)
        for layer in cache.layers:
            layer.make_static(self.index)
        self.ids = torch.zeros((B, 1), dtype=torch.long, device=device)
        self.positions: Any = None
        self.factory = graph_factory(device) if graphs else None
        # one failed capture is enough: later batches of this backend decode eagerly without trying
        self.graphs = self.factory is not None and not stats.get("graph_failures")
        self.graph: Any = None
        self.graph_out: Any = None
        self.eager_steps = 0
        self.failed = False
        self._side: Any = None   # the warm-up steps' stream, made once per batch
        self.cache = cache
        self.pool = pool if self.graphs else None
        # everything the capture freezes on the host: equal keys, interchangeable graphs
        self.key = (B, P, written, capacity, len(cache.layers), str(dtype), str(device))
        kept = self.pool.take(self.key) if self.pool is not None else None
        if kept is not None:
            self._adopt(kept)

    def _adopt(self, kept: _Kept) -> None:
        """Run this batch on a kept graph: its tensors take this batch's state (the captured
        kernels read and write only those), and the first step replays."""
        kept.mask.copy_(self.mask)
        self.mask, self.index = kept.mask, kept.index
        for layer, tensors in zip(self.cache.layers, kept.layers, strict=True):
            layer.adopt(tensors, self.index)
        self.ids, self.positions = kept.ids, kept.positions
        self.graph, self.graph_out = kept.graph, kept.out
        self.stats["graph_reuses"] = self.stats.get("graph_reuses", 0) + 1

    def step(self, ids: Any, positions: Any) -> Any:
        """One answer step: ``ids`` (B, 1) the tokens just chosen, ``positions`` their position ids."""
        if self.positions is None:
            self.positions = torch.zeros_like(positions)
        self.ids.copy_(ids)
        self.positions.copy_(positions)
        self.mask[:, :, :, self.P + self.fill] = 0   # this step's own position becomes visible
        self.index.fill_(self.fill)
        self.fill += 1
        self.stats["static_steps"] += 1
        if self.graph is not None:
            self.graph.replay()
            self.stats["graph_replays"] += 1
            return self.graph_out
        if self.graphs and not self.failed and self.eager_steps >= WARMUP:
            out = self._capture()
            if out is not None:
                return out
        self.eager_steps += 1
        if self.graphs and not self.failed and self.factory.needs_side_stream:   # as CUDA capture asks
            if self._side is None:
                self._side = torch.cuda.Stream()
            self._side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self._side):
                out = self.forward(self.ids, self.mask, self.positions)
            torch.cuda.current_stream().wait_stream(self._side)
            return out
        return self.forward(self.ids, self.mask, self.positions)

    def _capture(self) -> Any:
        """Record this step as a graph and run it; None (eager from now on) where capture fails."""
        graph = self.factory()
        if self.pool is not None and self.pool.slots:   # the kept graph must not rewrite the frame cache's prefix
            for layer in self.cache.layers:
                layer.own_prefix()
        try:
            out = graph.capture(lambda: self.forward(self.ids, self.mask, self.positions))
        except Exception as e:   # an op that cannot be captured: this batch goes on eagerly
            self.failed = True
            self.stats["graph_failures"] += 1
            LOG.warning("CUDA graph capture of the answer step failed (%s: %s); this batch decodes eagerly",
                        type(e).__name__, e)
            return None
        self.graph, self.graph_out = graph, out
        if self.pool is not None:
            self.pool.keep(self.key, _Kept(graph, out, self.ids, self.positions, self.mask, self.index,
                                           [layer.static_tensors() for layer in self.cache.layers]))
            self.stats["graph_pool_kib"] = self.pool.nbytes() / 1024
        self.stats["graph_captures"] += 1
        self.stats["graph_replays"] += 1
        return out
