"""The depth backend a benchmark measures, built the way the node builds it: node parameters ->
``vlm3_ros.params.mapping.settings_from`` (validated, then the node's typed settings) -> the depth
task's backend configuration. New engine options are node parameters and reach the benchmarks
through ``params``; only what no node sets (forced answer lengths for random weights, the
reference designs a mode compares against) is changed on the mapped configuration here."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# benchmark mode -> (model.engine_mode, rows share the prefix KV, common question lead prefilled once)
MODES = {"engine": ("engine", True, True), "no-lead": ("engine", True, False),
         "replicated": ("engine", False, True), "naive": ("naive", True, True)}


def param_default(name: str) -> Any:
    """The node's default of parameter ``name`` (the parameter table's)."""
    from vlm3_ros.params.table import PARAMS

    return next(p.default for p in PARAMS if p.name == name)


@dataclass(frozen=True)
class BenchModel:
    """What a benchmark sets on the depth model: the checkpoint (its tokenizer and processor serve
    the random-weight architectures too), the architecture (tiny: the checkpoint's own weights;
    4b / 4b-narrow: random weights of that shape), device, dtype, batch size, answer length (forced
    unless ``force_answers`` is off: random weights would stop at arbitrary lengths), and node
    parameters (``params``: e.g. model.decode_graph) on top of the node's defaults."""

    checkpoint: Path
    arch: str = "tiny"
    device: str = "cpu"
    dtype: str = "auto"
    batch_size: int = 64
    answer_tokens: int = 25
    prefix_kernel: str = "auto"
    params: tuple[tuple[str, Any], ...] = ()
    force_answers: bool = True

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> BenchModel:
        """From a script's options (those a script lacks keep the node's defaults)."""
        params = {name: getattr(a, attr) for attr, name in (("decode_graph", "model.decode_graph"),
                                                             ("graph_slots", "model.graph_slots"),
                                                             ("compile_step", "model.compile_step"))
                  if getattr(a, attr, None) is not None}
        return cls(Path(a.checkpoint), getattr(a, "arch", "tiny"), a.device, getattr(a, "dtype", "auto"),
                   getattr(a, "batch_size", 64), getattr(a, "answer_tokens", 25),
                   getattr(a, "prefix_kernel", "auto"), tuple(sorted(params.items())))

    def settings(self, mode: str = "engine", extra: dict[str, Any] | None = None) -> Any:
        """The node's settings for ``mode`` (the parameters a robot sets, plus ``extra``):
        ``.pipeline``, ``.serving``, ``.backends``."""
        from vlm3_ros.params.mapping import settings_from

        return settings_from({"backend": "transformers", "enabled_tasks": ["depth"], "vo.enabled": False,
                             "sparse_depth.rate_hz": 0.0, "model.depth_path": str(self.checkpoint),
                             "model.device": self.device, "model.dtype": self.dtype,
                             "model.engine_mode": MODES[mode][0], "model.batch_size": self.batch_size,
                             "model.prefix_cache_mb": 0.0, "max_points_per_request": 4096,
                             "max_new_tokens.depth": self.answer_tokens, **dict(self.params), **(extra or {})})

    def backend_config(self, mode: str = "engine", extra: dict[str, Any] | None = None) -> Any:
        """The mapped backend configuration of the depth task, with what a benchmark changes that
        no node does: answers forced to ``answer_tokens``, the reference design of ``mode``, the
        prefix kernel."""
        _, shared_prefix, shared_lead = MODES[mode]
        return dataclasses.replace(self.settings(mode, extra).backends["depth"],
                                   min_new_tokens=self.answer_tokens if self.force_answers else 0,
                                   shared_prefix_attention=shared_prefix,
                                   shared_question_lead=shared_lead, prefix_kernel=self.prefix_kernel)

    def backend(self, mode: str = "engine", extra: dict[str, Any] | None = None) -> Any:
        """The depth backend of ``mode``: the checkpoint's model, or random weights of ``arch``
        with the checkpoint's processor."""
        from vlm3_ros.inference.transformers_engine.model_loading import load_processor
        from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend

        cfg = self.backend_config(mode, extra)
        if self.arch == "tiny":
            return TransformersBackend(cfg)
        from vlm3_ros.inference.assets import random_arch_model

        model = random_arch_model(self.arch, self.device, self.dtype if self.dtype != "auto" else "bfloat16")
        return TransformersBackend(cfg, model=model, processor=load_processor(str(self.checkpoint)))


def on_same_model(backend: Any, cfg: Any) -> Any:
    """Another backend with configuration ``cfg`` on ``backend``'s model and processor (one model
    in memory for the configurations a benchmark compares)."""
    from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend

    return TransformersBackend(cfg, model=backend.model, processor=backend.processor)


def default_checkpoint() -> Path:
    """The tiny offline checkpoint of this environment (its cache directory: VLM3_CACHE)."""
    from vlm3_ros.tools import ros_env

    return ros_env.cache_dir() / "tiny_qwen3_vl"
