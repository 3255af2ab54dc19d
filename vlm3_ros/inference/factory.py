"""Build the per-task backends from the node configuration (shared by node, bring-up and eval)."""

from __future__ import annotations

from pathlib import Path

from vlm3_ros.bag import BagTopics
from vlm3_ros.inference.types import Backend, BackendError
from vlm3_ros.params import NodeConfig, api_key


def build_backends(cfg: NodeConfig) -> dict[str, Backend]:
    """One backend object per enabled task; tasks with the same checkpoint share one model."""
    kind = cfg["backend"]
    out: dict[str, Backend] = {}
    try:
        if kind == "transformers":
            from vlm3_ros.inference.local import LocalModelConfig, TransformersBackend

            for task in cfg.tasks:
                out[task] = TransformersBackend(LocalModelConfig(
                    path=cfg.model_path(task), device=cfg["model.device"], dtype=cfg["model.dtype"],
                    attn_implementation=cfg["model.attn_implementation"], quantization=cfg["model.quantization"],
                    max_pixels=cfg["model.max_pixels"], mode=cfg["model.engine_mode"],
                    batch_size=cfg["model.batch_size"]))
        elif kind == "remote":
            from vlm3_ros.inference.remote import RemoteBackend, RemoteConfig

            remote = RemoteBackend(RemoteConfig(
                url=cfg["remote.url"], model=cfg["remote.model"], api_key=api_key(cfg),
                timeout_s=cfg["remote.timeout_s"], max_concurrency=cfg["remote.max_concurrency"],
                retries=cfg["remote.retries"]))
            out = {task: remote for task in cfg.tasks}
        elif kind == "ground_truth":
            from vlm3_ros.inference.ground_truth import BagGroundTruth, GroundTruthBackend

            topics = BagTopics(depth=cfg["ground_truth.depth_topic"], world_frame=cfg["ground_truth.world_frame"])
            gt = GroundTruthBackend(BagGroundTruth(Path(cfg["ground_truth.bag"]), topics))
            out = {task: gt for task in cfg.tasks}
        else:
            raise BackendError(f"unknown backend {kind!r}")
    except Exception:
        close_backends(out)
        raise
    return out


def close_backends(backends: dict[str, Backend]) -> None:
    seen: set[int] = set()
    for b in backends.values():
        if id(b) not in seen:
            seen.add(id(b))
            b.close()
