"""The compiled answer step (``compile_step``, inference/transformers_engine/compiled_step.py) on the
tiny checkpoint, float32, on a CPU: naive generate's tokens, compiled once at configure, no
compilation on a request. One backend compiles for the whole module (compilation takes a while
on a CPU): keep the tests here few."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.contract.question import Question
from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend
from vlm3_ros.readers.tum import TumSequence

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.compiled]
P = PromptSet()


@pytest.fixture(scope="module")
def compiled_and_naive(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch_module):
    # inductor's cache where the backend puts it (under $VLM3_CACHE), here a fresh one; importing
    # parts of torch sets the variable to inductor's default (a temporary folder), as here
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch_module.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    monkeypatch_module.setenv("VLM3_CACHE", str(tmp_path_factory.mktemp("vlm3_cache")))
    eng = TransformersBackend(TransformersConfig(str(tiny_checkpoint), batch_size=8, decode_graph="static",
                                                 prefix_cache_mb=0, compile_step=True))
    nai = TransformersBackend(TransformersConfig(str(tiny_checkpoint), mode="naive"))
    yield eng, nai
    eng.close()
    nai.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def questions(key: object, img: np.ndarray, n: int, seed: int) -> list[Question]:
    rng = np.random.default_rng(seed)
    return [Question(key, (img,), P.render_depth(*rng.integers(0, 2000, 2)), max_new_tokens=6) for _ in range(n)]


@pytest.mark.timeout(900)   # the module's backend compiles from an empty cache in its fixture: minutes on 2 cores
def test_compiled_steps_answer_as_naive_without_compiling_on_a_request(compiled_and_naive) -> None:
    eng, nai = compiled_and_naive
    import os

    from vlm3_ros.inference.transformers_engine.compiled_step import inductor_cache_dir

    warm = dict(eng.stats)
    assert warm["compiled_graphs"] >= 1 and warm["warmup_s"] > 0 and warm["configure_s"] >= warm["warmup_s"]
    assert warm["questions"] == 0 and warm["static_steps"] == 0, "the warm-up's work is not counted as requests'"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(inductor_cache_dir())
    assert str(inductor_cache_dir()).startswith(os.environ["VLM3_CACHE"])
    assert any(inductor_cache_dir().rglob("*.py")), "inductor wrote its code under the package's cache directory"
    seq = TumSequence()
    big, small = seq.frames[0].rgb(), seq.frames[1].rgb()[:240, :320].copy()
    # the shapes a node serves: 1 row, a few, a whole batch and a remainder, frames of two sizes
    for key, img, n, seed in (("a", big, 1, 0), ("b", small, 3, 1), ("c", big, 11, 2)):
        qs = questions(key, img, n, seed)
        assert [a.text for a in eng.answer(qs)] == [a.text for a in nai.answer(qs)], (key, n)
    assert eng.stats["compiled_steps"] > warm["compiled_steps"], "the answer steps ran compiled"
    assert eng.stats["recompiles"] == 0 and eng.stats["compiled_graphs"] == warm["compiled_graphs"]


def test_a_compilation_after_the_warm_up_is_counted_as_a_recompile(monkeypatch, tmp_path: Path) -> None:
    import torch

    from vlm3_ros.inference.transformers_engine.compiled_step import StepCompiler

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))   # a user's choice: kept

    stats = {"compiled_graphs": 0, "recompiles": 0}
    compiler = StepCompiler(stats)
    assert compiler.cache_dir == str(tmp_path)
    fn = torch.compile(lambda x: (x * 2).sin() + 1, backend=compiler._compile, dynamic=True)
    fn(torch.ones(3, 4))
    fn(torch.ones(5, 4))   # dynamic: the same graph
    assert stats == {"compiled_graphs": 1, "recompiles": 0}
    compiler.warm = True
    fn(torch.ones(1, 4))   # a size of 1 is specialised: compiled again, after the warm-up
    assert stats == {"compiled_graphs": 2, "recompiles": 1}
