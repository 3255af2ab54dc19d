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
