"""The remote backend against small real HTTP servers on loopback that misbehave on purpose: server
down, malformed JSON, slow, 5xx, 422, a bad key; the API key comes from the environment only."""

from __future__ import annotations

import http.server
import json
import threading
import time

import numpy as np
import pytest

from vlm3_ros.contract.prompts import PromptSet
from vlm3_ros.contract.question import BackendError, Question
from vlm3_ros.inference.remote import RemoteBackend, RemoteConfig
from vlm3_ros.params.config import build_config
from vlm3_ros.params.mapping import api_key
from vlm3_ros.testing.small_inputs import free_port

P = PromptSet()


class FakeServer:
    """A real HTTP server on loopback whose replies the test scripts (fault injection)."""

    def __init__(self, replies: list[tuple[int, bytes, float]]) -> None:
        self.replies = list(replies)
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.headers.append({**dict(self.headers), "path": self.path, "method": self.command})
                code, body, delay = outer.replies.pop(0) if outer.replies else (500, b"no more", 0.0)
                time.sleep(delay)
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST  # GET /models (the health check) is scripted the same way

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


OK_BODY = json.dumps({"choices": [{"message": {"content": "<answer> 2.5 </answer>"}}],
                      "usage": {"prompt_tokens": 700, "completion_tokens": 9}}).encode()
Q = Question("k", (np.zeros((32, 32, 3), np.uint8),), "how far?", max_new_tokens=8)


def test_server_down_gives_an_explicit_error() -> None:
    b = RemoteBackend(RemoteConfig(url=f"http://127.0.0.1:{free_port()}/v1", retries=1, backoff_s=0.01, timeout_s=2))
    a = b.answer([Q])[0]
    b.close()
    assert not a.ok and "cannot reach" in a.error and "after 2 attempts" in a.error


def test_malformed_json_then_recovery() -> None:
    srv = FakeServer([(200, b"{not json", 0.0), (200, OK_BODY, 0.0)])
    b = RemoteBackend(RemoteConfig(url=srv.url, retries=2, backoff_s=0.01))
    a = b.answer([Q])[0]
    srv.close()
    b.close()
    assert a.ok and a.text == "<answer> 2.5 </answer>" and a.prompt_tokens == 700
    assert b.stats["retries"] == 1


def test_malformed_json_every_time_is_reported() -> None:
    srv = FakeServer([(200, b"<html>", 0.0)] * 3)
    b = RemoteBackend(RemoteConfig(url=srv.url, retries=2, backoff_s=0.01))
    a = b.answer([Q])[0]
    srv.close()
    b.close()
    assert not a.ok and "malformed JSON" in a.error


def test_slow_server_times_out_and_5xx_is_retried() -> None:
    srv = FakeServer([(200, OK_BODY, 1.5), (503, b"{}", 0.0), (200, OK_BODY, 0.0)])
    b = RemoteBackend(RemoteConfig(url=srv.url, retries=2, backoff_s=0.01, timeout_s=0.3))
    a = b.answer([Q])[0]
    srv.close()
    b.close()
    assert a.ok and b.stats["retries"] == 2  # timeout, then 503, then success


def test_client_error_is_not_retried() -> None:
    srv = FakeServer([(422, b'{"detail": "unknown field"}', 0.0)])
    b = RemoteBackend(RemoteConfig(url=srv.url, retries=3, backoff_s=0.01))
    a = b.answer([Q])[0]
    srv.close()
    b.close()
    assert not a.ok and "HTTP 422" in a.error and b.stats["requests"] == 1


def test_api_key_from_environment_only_and_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-5f1e2d3c"
    monkeypatch.setenv("VLM3_TEST_KEY", secret)
    cfg = build_config({"backend": "remote", "remote.api_key_env": "VLM3_TEST_KEY"})
    assert secret not in json.dumps(cfg.values)  # not a parameter value
    srv = FakeServer([(401, b'{"error": "bad key"}', 0.0)])
    rc = RemoteConfig(url=srv.url, api_key=api_key(cfg), retries=0)
    assert secret not in repr(rc)
    b = RemoteBackend(rc)
    a = b.answer([Q])[0]
    srv.close()
    b.close()
    assert srv.headers[0]["Authorization"] == f"Bearer {secret}"
    assert not a.ok and secret not in a.error


def test_bounded_concurrency_answers_every_question() -> None:
    srv = FakeServer([(200, json.dumps({"choices": [{"message": {"content": f"({k}, {k})"}}]}).encode(), 0.05)
                      for k in range(6)])
    b = RemoteBackend(RemoteConfig(url=srv.url, max_concurrency=3))
    got = b.answer([Q] * 6)
    srv.close()
    b.close()
    assert all(a.ok for a in got) and len(got) == 6


MODELS = json.dumps({"object": "list", "data": [{"id": "vlm3-depth"}, {"id": "vlm3-pose"}]}).encode()


def test_health_check_names_the_server_and_what_to_fix() -> None:
    down = RemoteBackend(RemoteConfig(url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2))
    with pytest.raises(BackendError, match=r"is unreachable .* start it"):
        down.check()
    down.close()
    srv = FakeServer([(200, MODELS, 0.0), (200, MODELS, 0.0), (200, b'{"object": "list", "data": []}', 0.0),
                      (404, b"{}", 0.0)])
    assert RemoteBackend(RemoteConfig(url=srv.url, model="vlm3-pose")).check() == ["vlm3-depth", "vlm3-pose"]
    with pytest.raises(BackendError, match=r"serves \['vlm3-depth', 'vlm3-pose'\], not 'vlm3-corr'"):
        RemoteBackend(RemoteConfig(url=srv.url, model="vlm3-corr")).check()
    assert RemoteBackend(RemoteConfig(url=srv.url, model="anything")).check() == []  # transformers serve lists none
    with pytest.raises(BackendError, match="HTTP 404 to GET /models"):
        RemoteBackend(RemoteConfig(url=srv.url)).check()
    assert srv.headers[0]["path"] == "/v1/models" and srv.headers[0]["method"] == "GET"
    srv.close()


def test_opening_a_task_whose_server_is_down_fails_with_the_task_named() -> None:
    from vlm3_ros.inference.backend_registry import open_backends

    up = FakeServer([(200, MODELS, 0.0)])
    configs = {"depth": RemoteConfig(url=up.url, model="vlm3-depth"),
               "corr": RemoteConfig(url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2)}
    with pytest.raises(BackendError, match=r"remote backend of task\(s\) corr: server .* is unreachable"):
        open_backends("remote", configs)
    up.close()
