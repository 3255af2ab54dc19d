"""The remote (OpenAI-compatible) backend against a real `transformers serve` process on loopback
serving the tiny checkpoint: the same greedy tokens as in-process generate."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.contract.question import Question
from vlm3_ros.inference.remote import RemoteBackend, RemoteConfig
from vlm3_ros.testing.small_inputs import free_port
from vlm3_ros.testing.small_inputs import random_images as images
from vlm3_ros.tools.processes import NodeProcess

P = PromptSet()


@pytest.fixture(scope="module")
def served(tiny_checkpoint: Path, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, HF_HOME=str(tmp_path_factory.mktemp("hf_home")))
    proc = NodeProcess("vlm3_ros.testing.serve_offline", [str(tiny_checkpoint), "--host", "127.0.0.1", "--port",
                                                          str(port), "--device", "cpu", "--dtype", "float32"],
                       env=env, log_dir=tmp_path_factory.mktemp("serve")).start()
    try:
        proc.wait_for_log("Uvicorn running", timeout=180)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.stop()


@pytest.mark.model
def test_real_server_answers_like_in_process_generate(served: str, tiny_checkpoint: Path) -> None:
    from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
    from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend

    qs = [Question(("f", k), (im,), P.render_depth(100 * k, 50 + 300 * k), max_new_tokens=10)
          for k, im in enumerate(images(3))]
    remote = RemoteBackend(RemoteConfig(url=served, timeout_s=120, max_concurrency=2))
    local = TransformersBackend(TransformersConfig(str(tiny_checkpoint), mode="naive"))
    try:
        got, want = remote.answer(qs), local.answer(qs)
    finally:
        remote.close()
        local.close()
    assert all(a.ok for a in got), [a.error for a in got]
    # the server strips the leading space of the completion; greedy tokens are the same
    assert [a.text.strip() for a in got] == [a.text.strip() for a in want]
    assert [a.generated_tokens for a in got] == [10, 10, 10]
    assert got[0].prompt_tokens == want[0].prompt_tokens
