"""The backend registry: a backend kind's name -> how to open it from its configuration.

Configurations are frozen dataclasses (one per task, built from the node's parameters by
vlm3_ros.params.mapping). Tasks whose configurations are equal share one backend object, so one
server or one checkpoint serves several tasks. Backends import their heavy libraries (torch,
transformers) only when opened.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from vlm3_ros.contract.question import Backend, BackendError


@dataclass(frozen=True)
class BackendKind:
    name: str
    description: str
    open: Callable[[Any], Backend]      # configuration -> backend
    test_double: bool = False


BACKENDS: dict[str, BackendKind] = {}


def register(kind: BackendKind) -> None:
    if kind.name in BACKENDS:
        raise ValueError(f"backend {kind.name!r} is registered twice")
    BACKENDS[kind.name] = kind


def open_backends(kind: str, configs: Mapping[str, Hashable]) -> dict[str, Backend]:
    """One backend per task; tasks with equal configurations share one object. On failure the
    ones already opened are closed again."""
    if kind not in BACKENDS:
        raise BackendError(f"unknown backend {kind!r}; known: {sorted(BACKENDS)}")
    opened: dict[Hashable, Backend] = {}
    out: dict[str, Backend] = {}
    try:
        for task, cfg in configs.items():
            if cfg not in opened:
                try:
                    opened[cfg] = BACKENDS[kind].open(cfg)
                except BackendError as e:
                    tasks = [t for t, c in configs.items() if c == cfg]
                    raise BackendError(f"{kind} backend of task(s) {', '.join(tasks)}: {e}") from e
            out[task] = opened[cfg]
    except Exception:
        close_backends(out | {f"_{i}": b for i, b in enumerate(opened.values())})
        raise
    return out


def close_backends(backends: Mapping[str, Backend]) -> None:
    seen: set[int] = set()
    for b in backends.values():
        if id(b) not in seen:
            seen.add(id(b))
            b.close()


def _open_transformers(cfg: Any) -> Backend:
    from vlm3_ros.inference.transformers_engine.transformers_backend import TransformersBackend

    return TransformersBackend(cfg)


def _open_remote(cfg: Any) -> Backend:
    from vlm3_ros.inference.remote import RemoteBackend

    backend = RemoteBackend(cfg)
    try:
        backend.check()  # fail at configure with the reason, not at the first request
    except Exception:
        backend.close()
        raise
    return backend


def _open_ground_truth(cfg: Any) -> Backend:
    from vlm3_ros.inference.ground_truth.backend import GroundTruthBackend

    return GroundTruthBackend.from_config(cfg)


register(BackendKind("transformers", "local VLM3 checkpoints through transformers", _open_transformers))
register(BackendKind("remote", "an OpenAI-compatible server (vLLM, SGLang, transformers serve)", _open_remote))
register(BackendKind("ground_truth", "TEST DOUBLE answering from a bag's recorded depth and poses",
                     _open_ground_truth, test_double=True))
