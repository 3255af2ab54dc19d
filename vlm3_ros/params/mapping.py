"""Parameters -> the objects they configure, in one place: :func:`node_settings` builds the node's
one settings object (vlm3_ros.params.node_settings.NodeSettings) from the validated configuration:
the tasks' pipeline settings, each task's backend configuration, the serving core's settings and
the ROS shell's camera subscription. The node, ``vlm3-ros eval``, the tools and the benchmarks all
build from here, so an evaluation scores exactly what the robot runs."""

from __future__ import annotations

import json
import os
from collections.abc import Hashable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vlm3_ros.contract.prompts import PromptError, PromptSet
from vlm3_ros.contract.question import Backend
from vlm3_ros.geometry.odometry import KeyframePolicy
from vlm3_ros.inference.backend_registry import open_backends as open_registered
from vlm3_ros.inference.ground_truth.backend import GroundTruthConfig
from vlm3_ros.inference.memory_plan import MemoryPlan, check_fits, free_bytes, node_plan
from vlm3_ros.inference.remote import RemoteConfig
from vlm3_ros.inference.transformers_engine.engine_settings import TransformersConfig
from vlm3_ros.params.config import ConfigError, NodeConfig, build_config
from vlm3_ros.params.node_settings import CameraSubscription, NodeSettings
from vlm3_ros.serving.settings import OdometrySettings, ServingSettings, SparseDepthSettings
from vlm3_ros.tasks.pipeline import PipelineSettings
from vlm3_ros.tasks.task_registry import TASKS


def load_prompts(path: str) -> PromptSet:
    """The PromptSet from a YAML override file ('' = the contract's strings)."""
    import yaml

    if not path:
        return PromptSet()
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"prompts_file {path!r} cannot be read: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"prompts_file {path!r} must hold a mapping of template names to strings")
    try:
        return PromptSet.from_mapping(data)
    except PromptError as e:
        raise ConfigError(f"prompts_file {path!r}: {e}") from e


def pipeline_settings(cfg: NodeConfig) -> PipelineSettings:
    """What the model sees and how its answers are read: unification (with rectify,
    equalize_focal, max_long_edge, interpolation), prompts, token limits, the depth type."""
    unify = {name: replace(spec.unify, equalize_focal=cfg["equalize_focal"], rectify=cfg["rectify"],
                           max_long_edge=cfg["max_long_edge"], interpolation=cfg["interpolation"])
             for name, spec in TASKS.items()}
    return PipelineSettings(unify=unify, prompts=load_prompts(cfg["prompts_file"]),
                            max_new_tokens={name: cfg[spec.tokens_param] for name, spec in TASKS.items()},
                            model_depth_type=cfg["model.depth_type"], max_points=cfg["max_points_per_request"],
                            resample_once=cfg["resample_once"])


def api_key(cfg: NodeConfig) -> str | None:
    """The remote API key, from the environment only (never a parameter, never logged)."""
    name = cfg["remote.api_key_env"]
    return os.environ.get(name) if name else None


def backend_config(cfg: NodeConfig, task: str) -> Hashable:
    """The configuration of ``task``'s backend (equal configurations share one backend)."""
    kind = cfg["backend"]
    if kind == "transformers":
        return TransformersConfig(path=cfg.model_path(task), device=cfg["model.device"], dtype=cfg["model.dtype"],
                                  attn_implementation=cfg["model.attn_implementation"],
                                  quantization=cfg["model.quantization"], max_pixels=cfg["model.max_pixels"],
                                  mode=cfg["model.engine_mode"], batch_size=cfg["model.batch_size"],
                                  image_processing=cfg["model.image_processing"],
                                  prefix_cache_mb=cfg["model.prefix_cache_mb"], decode_graph=cfg["model.decode_graph"],
                                  graph_slots=cfg["model.graph_slots"], compile_step=cfg["model.compile_step"])
    if kind == "remote":
        return RemoteConfig(url=cfg[f"remote.{task}_url"] or cfg["remote.url"],
                            model=cfg[f"remote.{task}_model"] or cfg["remote.model"], api_key=api_key(cfg),
                            timeout_s=cfg["remote.timeout_s"], max_concurrency=cfg["remote.max_concurrency"],
                            retries=cfg["remote.retries"])
    if kind == "ground_truth":
        return GroundTruthConfig(bag=cfg["ground_truth.bag"], depth_topic=cfg["ground_truth.depth_topic"],
                                 world_frame=cfg["ground_truth.world_frame"],
                                 camera_frame=cfg["ground_truth.camera_frame"],
                                 pose_topic=cfg["ground_truth.pose_topic"])
    raise ConfigError(f"backend {kind!r} has no parameter mapping in vlm3_ros/params/mapping.py")


def backend_configs(cfg: NodeConfig) -> dict[str, Hashable]:
    return {task: backend_config(cfg, task) for task in cfg.tasks}


def open_backends(settings: NodeSettings) -> dict[str, Backend]:
    """One backend per enabled task (loads models: slow), after the memory check
    (:func:`check_memory`): a plan that does not fit the device fails here, before any load."""
    check_memory(settings)
    return open_registered(settings.backend, settings.backends)


# questions one request asks per task at most (depth/corr: the point limit, see memory_plan_of)
ROWS_PER_REQUEST = {"pose": 4, "object": 1}


def memory_plan_of(settings: NodeSettings, device: str) -> MemoryPlan:
    """The memory plan (vlm3_ros.inference.memory_plan) of the node's transformers backends on
    ``device`` (resolved: cpu, cuda, cuda:N)."""
    rows = {task: ROWS_PER_REQUEST.get(task, settings.pipeline.max_points) for task in settings.tasks}
    return node_plan(settings.backends, settings.pipeline.max_new_tokens, rows, device)


def check_memory(settings: NodeSettings) -> MemoryPlan | None:
    """BackendError (the plan, the free memory and the settings that would fit) when the
    transformers backends' plan exceeds the device's free memory; None where nothing is checked
    (another backend, ``model.memory_check: false``, a device whose free memory is unknown)."""
    if settings.backend != "transformers" or not settings.parameters.get("model.memory_check", True):
        return None
    from vlm3_ros.inference.transformers_engine.model_loading import resolve_device

    for config in settings.backends.values():
        config.validate()  # a missing or empty checkpoint folder is named as such, not as a plan
        if not _readable_config(config.path):
            return None  # loading names what is wrong with the checkpoint's config.json
    device = resolve_device(next(iter(settings.backends.values())).device)
    plan = memory_plan_of(settings, device)
    free, _ = free_bytes(device)
    check_fits(plan, free)
    return plan


def _readable_config(checkpoint: str) -> bool:
    """Whether the checkpoint's config.json parses as a JSON object (the plan reads its shapes)."""
    try:
        return isinstance(json.loads((Path(checkpoint) / "config.json").read_text()), dict)
    except (OSError, ValueError):
        return False


def odometry_policy(cfg: NodeConfig) -> KeyframePolicy:
    """Keyframes and the usable baseline, for the node's VO and the evaluation's alike."""
    return KeyframePolicy(cfg["vo.keyframe_min_translation_m"], cfg["vo.keyframe_min_rotation_deg"],
                          cfg["vo.keyframe_max_age_s"], cfg["vo.min_baseline_m"])


def serving_settings(cfg: NodeConfig) -> ServingSettings:
    sparse = SparseDepthSettings(rate_hz=cfg["sparse_depth.rate_hz"] if "depth" in cfg.tasks else 0.0,
                                 pattern=cfg["sparse_depth.pattern"],
                                 grid_cols=cfg["sparse_depth.grid_cols"], grid_rows=cfg["sparse_depth.grid_rows"],
                                 pixels=tuple(cfg["sparse_depth.pixels"]), depth_type=cfg["sparse_depth.depth_type"])
    vo = OdometrySettings(enabled=cfg["vo.enabled"] and "pose" in cfg.tasks, rate_hz=cfg["vo.rate_hz"],
                          odom_frame=cfg["vo.odom_frame"],
                          base_frame=cfg["vo.base_frame"], extrinsic=tuple(cfg["vo.camera_extrinsic"]),
                          use_tf_static=cfg["vo.use_tf_static"],
                          policy=odometry_policy(cfg),
                          position_stddev_m=cfg["vo.position_stddev_m"],
                          rotation_stddev_deg=cfg["vo.rotation_stddev_deg"], publish_tf=cfg["vo.publish_tf"])
    return ServingSettings(tasks=cfg.tasks, backend=cfg["backend"], image_topic=cfg["image_topic"],
                           camera_info_topic=cfg["camera_info_topic"], camera_frame=cfg["camera_frame"],
                           stamp_tolerance_s=cfg["stamp_tolerance_s"], time_jump_s=cfg["time_jump_s"],
                           frame_cache_size=cfg["frame_cache_size"], max_image_pixels=cfg["max_image_pixels"],
                           camera_timeout_s=cfg["camera_timeout_s"], max_regions=cfg["max_regions_per_request"],
                           max_question_chars=cfg["max_question_chars"], queue_size=cfg["inference_queue_size"],
                           merge_requests=cfg["merge_requests"],
                           request_timeout_s=cfg["request_timeout_s"], sparse=sparse, vo=vo)


def node_settings(cfg: NodeConfig) -> NodeSettings:
    """The node's settings from the validated configuration (the prompts file is read here, once)."""
    camera = CameraSubscription(use_compressed=cfg["use_compressed"], reliable=cfg["qos_reliability"] == "reliable",
                                depth=cfg["qos_depth"])
    return NodeSettings(backend=cfg["backend"], backends=MappingProxyType(backend_configs(cfg)),
                        pipeline=pipeline_settings(cfg), serving=serving_settings(cfg), camera=camera,
                        parameters=MappingProxyType(dict(cfg.values)), notes=tuple(cfg.notes()))


def settings_from(values: dict[str, Any], require_backend: bool = True) -> NodeSettings:
    """Parameter values (defaults for the rest) -> validated -> the node's settings; ConfigError names
    what is wrong. ``require_backend=False``: see vlm3_ros.params.config.build_config."""
    return node_settings(build_config(values, require_backend))


def with_live_changes(settings: NodeSettings, cfg: NodeConfig) -> NodeSettings:
    """``settings`` with the parameters a running node applies at once (table.LIVE) taken from
    ``cfg``: the serving core's settings and the pipeline's point limit; the rest stays as
    configured (the prompts file is not read again)."""
    return replace(settings, serving=serving_settings(cfg),
                   pipeline=replace(settings.pipeline, max_points=cfg["max_points_per_request"]),
                   parameters=MappingProxyType(dict(cfg.values)))
