"""The static answer step compiled with ``torch.compile`` (inductor), compiled at configure.

Eager, an answer step dispatches every operation of the library's decoder layers on its own:
RMSNorm as pow/mean/rsqrt/mul, the rotary embedding, SiLU and the residual adds each a kernel
(``bench/step_ops.py`` counts them). Compiled, inductor fuses these elementwise chains into a few
generated kernels around the matrix products. On CUDA the compiled step is what
``decode_graph.StaticDecode`` captures as a CUDA graph (the graph records the compiled kernels).

What is compiled is the text model's forward over the static step's fixed inputs (token ids,
positions, the 4D mask, the shared-prefix cache's preallocated buffers), returning the last hidden
state; the output layer stays outside (the vocabulary-sliced argmax on a CPU, the plain product
elsewhere). Shapes are dynamic (rows, prefix length, own tokens), so batches and frames of other
sizes reuse one compiled graph; PyTorch specialises a size of 1, hence the warm-up compiles one
row and several rows on a dummy frame at configure (:meth:`StepCompiler.warm_up`), so a node never
compiles on a caller's request. Every compilation runs through a counting backend: ``compiled_graphs``
counts them and ``recompiles`` those after the warm-up (both in ``/diagnostics``); ``warmup_s`` is
the configure time the warm-up took. Inductor's on-disk cache lives under the package's cache
directory (:func:`use_package_cache`), so a second configure with the same shapes skips the
code generation (a warm start).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vlm3_ros.contract.question import Question

LOG = logging.getLogger(__name__)

WARMUP_ROWS = (1, 2)   # a size of 1 is specialised by the compiler: one row and several rows cover all
WARMUP_TOKENS = 3      # answer tokens per warm-up question: the prefill plus two static steps


def inductor_cache_dir() -> Path:
    """Where inductor keeps the compiled code of this package: ``inductor/`` under the package's
    cache directory (``$VLM3_CACHE``, else ``~/.cache/vlm3_ros``)."""
    base = os.environ.get("VLM3_CACHE") or str(Path.home() / ".cache" / "vlm3_ros")
    return Path(base) / "inductor"


def use_package_cache() -> str:
    """Point inductor's on-disk cache at :func:`inductor_cache_dir`, unless the user chose one
    (``$TORCHINDUCTOR_CACHE_DIR`` set to anything but inductor's default: importing parts of torch,
    FlexAttention among them, sets the variable to the default, a temporary folder); returns it."""
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        default = os.path.abspath(default_cache_dir())
    except (ImportError, AttributeError):   # a torch without that helper: only an unset variable is ours
        default = None
    if current is None or os.path.abspath(current) == default:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(inductor_cache_dir())
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


def _text_step(model: Any, cache: Any, ids: Any, mask: Any, positions: Any, cache_kwarg: str) -> Any:
    """The compiled function: the text model over one answer step, the last hidden state (B, hidden)."""
    return model.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True, **{cache_kwarg: cache}).last_hidden_state[:, -1, :]


class StepCompiler:
    """Compiles a backend's static answer steps; counts compilations in ``stats``."""

    def __init__(self, stats: dict[str, Any]) -> None:
        import torch

        self.stats = stats
        self.warm = False
        self.cache_dir = use_package_cache()
        self._step = torch.compile(_text_step, backend=self._compile, dynamic=True)

    def _compile(self, gm: Any, example_inputs: Sequence[Any]) -> Any:
        """torch.compile's backend: inductor, each call counted (a call is a compilation)."""
        from torch._inductor.compile_fx import compile_fx

        self.stats["compiled_graphs"] += 1
        if self.warm:
            self.stats["recompiles"] += 1
            LOG.warning("the compiled answer step recompiled on a request (a shape the warm-up did not cover)")
        return compile_fx(gm, example_inputs)

    def wrap(self, forward: Callable[[Any, Any, Any], Any], sliced: bool, model: Any,
             cache: Any) -> Callable[[Any, Any, Any], Any]:
        """The compiled counterpart of the greedy loop's ``forward`` for a static step on ``cache``:
        the hidden state where the loop takes the next token from it (``sliced``), else the logits."""
        from vlm3_ros.inference.shared_prefix import CACHE_KWARG

        def step(ids: Any, mask: Any, positions: Any) -> Any:
            self.stats["compiled_steps"] += 1
            h = self._step(model, cache, ids, mask, positions, CACHE_KWARG)
            return h if sliced else model.lm_head(h)
        return step

    def warm_up(self, backend: Any, rows: Sequence[int] = ()) -> None:
        """Compile the step before the first request: ``rows`` questions (default
        :data:`WARMUP_ROWS`) on a dummy frame, each held to :data:`WARMUP_TOKENS` answer tokens.
        Leaves the backend's counters, frame prefix cache and kept graphs as they were."""
        engine = backend.engine
        t0 = time.perf_counter()
        kept = dict(backend.stats)
        img = np.full((64, 64, 3), 128, dtype=np.uint8)
        held = engine.greedy.min_new
        engine.greedy.min_new = WARMUP_TOKENS
        try:
            for n in rows or WARMUP_ROWS:
                qs = [Question(("vlm3_warmup", n), (img,), f"Where is point {i} of {n}?", max_new_tokens=WARMUP_TOKENS)
                      for i in range(n)]
                engine.answer_group(qs)
        finally:
            engine.greedy.min_new = held
            engine.clear()
            for k, v in kept.items():
                if k not in ("compiled_graphs", "compiled_steps"):
                    backend.stats[k] = v
        self.warm = True
        backend.stats["warmup_s"] = round(time.perf_counter() - t0, 3)
        LOG.info("compiled the answer step in %.1f s (%d graphs)", backend.stats["warmup_s"],
                 backend.stats["compiled_graphs"])
