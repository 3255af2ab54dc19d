"""OpenAI-compatible chat-completions client: the scale-out path (vLLM, SGLang, `transformers serve`).

Each question is one request carrying its preprocessed (unified) images as PNG data URLs, then the
text; greedy decoding (temperature 0). Requests run with bounded concurrency, a timeout, and
retries with exponential backoff on connection errors, 429 and 5xx. The API key comes from an
environment variable and is never logged or echoed in errors.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vlm3_ros.contract.question import Answer, BackendError, Question
from vlm3_ros.runtime import cancel
from vlm3_ros.runtime.timing import stage

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteConfig:
    url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    api_key: str | None = None          # from the environment; repr hides it
    timeout_s: float = 60.0
    max_concurrency: int = 4
    retries: int = 2
    backoff_s: float = 0.5

    def __repr__(self) -> str:
        key = "set" if self.api_key else "unset"
        return (f"RemoteConfig(url={self.url!r}, model={self.model!r}, api_key=<{key}>, timeout_s={self.timeout_s}, "
                f"max_concurrency={self.max_concurrency}, retries={self.retries})")


def png_data_url(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise BackendError("could not PNG-encode the image")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


class RemoteBackend:
    def __init__(self, cfg: RemoteConfig) -> None:
        if not cfg.url.startswith(("http://", "https://")):
            raise BackendError(f"remote url {cfg.url!r} must start with http:// or https://")
        self.cfg = cfg
        self.name = f"remote:{cfg.url}"
        self._pool = ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="vlm3-remote")
        self.stats = {"requests": 0, "retries": 0, "failures": 0}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def check(self, timeout_s: float = 10.0) -> list[str]:
        """Health check at configure: ``GET {url}/models`` must answer, and list ``model`` when the
        server lists any (vLLM and SGLang list their served names; ``transformers serve`` lists
        none). Returns the listed ids; raises BackendError saying what to fix."""
        req = urllib.request.Request(self.cfg.url.rstrip("/") + "/models", method="GET")
        if self.cfg.api_key:
            req.add_header("Authorization", f"Bearer {self.cfg.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=min(timeout_s, self.cfg.timeout_s)) as resp:
                data = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise BackendError(f"server {self.cfg.url} answered HTTP {e.code} to GET /models: is it an "
                               "OpenAI-compatible server, and is the API key right?") from e
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            raise BackendError(f"server {self.cfg.url} is unreachable ({getattr(e, 'reason', e)}): start it "
                               "(docs/engine.md has the vllm/sglang commands) or fix remote.url / "
                               "remote.<task>_url") from e
        except json.JSONDecodeError as e:
            raise BackendError(f"server {self.cfg.url} answered GET /models with malformed JSON: {e}") from e
        ids = [str(m.get("id", "")) for m in (data.get("data") or []) if isinstance(m, dict)]
        if self.cfg.model and ids and self.cfg.model not in ids:
            raise BackendError(f"server {self.cfg.url} serves {ids}, not {self.cfg.model!r}: set remote.model or "
                               "remote.<task>_model to one of them")
        return ids

    def answer(self, questions: Sequence[Question]) -> list[Answer]:
        token = cancel.current()  # the pool's threads do not see the caller's context
        # Questions on one frame share its images: PNG-encode each once, not once per question.
        with stage("image"):
            urls: dict[int, str] = {}
            for q in questions:
                for im in q.images:
                    if id(im) not in urls:
                        urls[id(im)] = png_data_url(im)
        return list(self._pool.map(lambda q: self._one(q, token, urls), questions))

    def _payload(self, q: Question, urls: dict[int, str] | None = None) -> dict[str, Any]:
        urls = urls or {}
        content: list[dict[str, Any]] = [{"type": "image_url",
                                          "image_url": {"url": urls.get(id(im)) or png_data_url(im)}}
                                         for im in q.images]
        content.append({"type": "text", "text": q.text})
        body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], "max_tokens": q.max_new_tokens,
                                "temperature": 0.0, "stream": False}
        if self.cfg.model:
            body["model"] = self.cfg.model
        return body

    def _post(self, body: bytes) -> dict[str, Any]:
        req = urllib.request.Request(self.cfg.url.rstrip("/") + "/chat/completions", data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        if self.cfg.api_key:
            req.add_header("Authorization", f"Bearer {self.cfg.api_key}")
        with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
            raw = resp.read()
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise BackendError(f"server returned malformed JSON ({len(raw)} bytes): {e}") from e

    def _one(self, q: Question, token: cancel.CancelToken | None = None, urls: dict[int, str] | None = None) -> Answer:
        body = json.dumps(self._payload(q, urls)).encode()
        last = ""
        for attempt in range(self.cfg.retries + 1):
            if token is not None:
                token.check()  # each request and retry is a boundary
            if attempt:
                self.stats["retries"] += 1
                time.sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            self.stats["requests"] += 1
            try:
                data = self._post(body)
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code} from {self.cfg.url}"
                if e.code in (429,) or e.code >= 500:
                    continue
                detail = e.read()[:300].decode(errors="replace")
                self.stats["failures"] += 1
                return Answer("", error=f"{last}: {detail}")
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"cannot reach {self.cfg.url}: {getattr(e, 'reason', e)}"
                continue
            except BackendError as e:
                last = str(e)
                continue
            try:
                choice = data["choices"][0]
                text = choice["message"]["content"] or ""
                usage = data.get("usage") or {}
            except (KeyError, IndexError, TypeError):
                last = f"response without choices[0].message.content: {str(data)[:200]}"
                continue
            return Answer(str(text), int(usage.get("prompt_tokens", 0) or 0),
                          int(usage.get("completion_tokens", 0) or 0))
        self.stats["failures"] += 1
        return Answer("", error=f"{last} (after {self.cfg.retries + 1} attempts)")
