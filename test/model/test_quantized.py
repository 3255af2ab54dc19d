"""Weight-only int8 / int4 (model.quantization, torchao) on the tiny checkpoint, CPU: the model
loads quantised to the memory plan's bytes exactly, and the engine's shared-prefix path answers
on it as naive generate does on the same quantised model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.contract.question import Question
from vlm3_ros.inference.memory_plan import ModelShape, weight_bytes
from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
from vlm3_ros.inference.transformers_engine.quantize import stored_bytes, torchao_missing
from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend
from vlm3_ros.readers.tum import TumSequence

pytestmark = [pytest.mark.model,
              pytest.mark.skipif(bool(torchao_missing()), reason=f"quantisation needs torchao: {torchao_missing()}")]


@pytest.mark.parametrize("quantization", ["int8", "int4"])
def test_quantised_engine_answers_as_naive_on_the_same_weights(tiny_checkpoint: Path, quantization: str) -> None:
    eng = TransformersBackend(TransformersConfig(str(tiny_checkpoint), mode="engine", batch_size=8,
                                                 quantization=quantization))
    nai = TransformersBackend(TransformersConfig(str(tiny_checkpoint), mode="naive", quantization=quantization))
    try:
        weight = eng.model.model.language_model.layers[0].mlp.gate_proj.weight
        assert hasattr(weight, "__tensor_flatten__"), type(weight)          # a torchao tensor, not a float one
        assert type(eng.model.lm_head.weight.data).__name__ == "Tensor"     # the output layer stays full precision
        shape = ModelShape.from_checkpoint(tiny_checkpoint)
        assert stored_bytes(eng.model) == weight_bytes(shape, quantization, 4)
        img = TumSequence().frames[0].rgb()[::2, ::2].copy()
        rng = np.random.default_rng(0)
        qs = [Question("f0", (img,), PromptSet().render_depth(*rng.integers(0, 2000, 2)), max_new_tokens=6)
              for _ in range(6)]
        got, want = eng.answer(qs), nai.answer(qs)
        assert all(a.ok for a in got)
        assert [a.text for a in got] == [a.text for a in want]
    finally:
        eng.close()
        nai.close()


def test_int8_toy_answers_parse_where_full_precisions_do(tmp_path: Path) -> None:
    """The TOY demo model (tiny architecture trained on the bundled bag: NOT VLM3) on held-out
    questions of each task: int8 replies parse at least as often as full precision's, per task."""
    from vlm3_ros.tools import demo_model, ros_env
    from vlm3_ros.training import toy
    from vlm3_ros.training.heldout import ask, score
    from vlm3_ros.training.sft_samples import read_jsonl, split_files

    model = toy.build(tmp_path / "toy", ros_env.cache_dir())
    data = demo_model.export_recipe_data(tmp_path / "data")
    samples = read_jsonl(split_files(data)["val"])
    picked = [s for task in ("depth", "pose", "corr", "object") for s in [x for x in samples if x.task == task][:6]]
    scores = {}
    for quantization in ("none", "int8"):
        backend = TransformersBackend(TransformersConfig(str(model), batch_size=8, quantization=quantization))
        try:
            scores[quantization] = score(picked, ask(backend, picked, data))
        finally:
            backend.close()
    assert set(scores["none"]) == {"depth", "pose", "corr", "object"}
    for task, full in scores["none"].items():
        assert full["parse_rate"] > 0, task                      # the TOY model answers in the formats
        assert scores["int8"][task]["parse_rate"] >= full["parse_rate"], (task, scores)


@pytest.mark.timeout(900)   # compiles from an empty inductor cache: minutes on 2 cores
@pytest.mark.parametrize("quantization", ["int8", "int4"])
def test_quantised_weights_run_through_the_compiled_answer_step(tiny_checkpoint: Path, tmp_path: Path,
                                                                quantization: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """model.compile_step on quantised weights: torch.compile traces through torchao's tensor subclass,
    the answers stay naive generate's on the same weights, no recompile after the warm-up."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    monkeypatch.setenv("VLM3_CACHE", str(tmp_path))
    eng = TransformersBackend(TransformersConfig(str(tiny_checkpoint), batch_size=8, decode_graph="static",
                                                 prefix_cache_mb=0, compile_step=True, quantization=quantization))
    nai = TransformersBackend(TransformersConfig(str(tiny_checkpoint), mode="naive", quantization=quantization))
    try:
        warm = dict(eng.stats)
        seq = TumSequence()
        rng = np.random.default_rng(1)
        for key, n in (("a", 1), ("b", 5)):
            qs = [Question(key, (seq.frames[0].rgb(),), PromptSet().render_depth(*rng.integers(0, 2000, 2)),
                           max_new_tokens=6) for _ in range(n)]
            assert [a.text for a in eng.answer(qs)] == [a.text for a in nai.answer(qs)], (key, n)
        assert eng.stats["compiled_steps"] > warm["compiled_steps"], "the answer steps ran compiled"
        assert eng.stats["recompiles"] == 0
    finally:
        eng.close()
        nai.close()
