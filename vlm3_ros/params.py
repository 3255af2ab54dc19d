"""The perception node's parameters: one table (name, default, range, description) and the
validated, frozen configuration built from it. Pure Python: the node declares ROS parameters from
this table, the bring-up and the launch-file test read it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from vlm3_ros.backproject import DEPTH_TYPES
from vlm3_ros.pipeline import TASKS
from vlm3_ros.unify import INTERPOLATIONS


class ConfigError(ValueError):
    """A parameter value is invalid; the message names the parameter and what to set."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False


_P = ParamSpec
PARAMS: tuple[ParamSpec, ...] = (
    # camera input
    _P("image_topic", "/camera/image_raw", "sensor_msgs/Image topic (rgb8, bgr8, rgba8, bgra8, mono8, mono16)"),
    _P("camera_info_topic", "/camera/camera_info", "sensor_msgs/CameraInfo topic of the same camera"),
    _P("use_compressed", False, "subscribe to <image_topic>/compressed (sensor_msgs/CompressedImage) instead"),
    _P("qos_reliability", "best_effort", "camera subscription reliability (sensor-data QoS is best_effort)",
       choices=("best_effort", "reliable")),
    _P("qos_depth", 5, "camera subscription queue depth", 1, 100),
    _P("stamp_tolerance_s", 0.02, "max |image stamp - CameraInfo stamp| to pair them; also for BY_STAMP lookups",
       0.0, 1.0),
    _P("frame_cache_size", 30, "recent frames kept for BY_STAMP queries", 1, 600),
    _P("max_image_pixels", 4096 * 4096, "largest accepted image (width*height); larger ones are rejected",
       1, 64 * 1024 * 1024),
    _P("camera_timeout_s", 5.0, "warn (and report in diagnostics) when no frame arrived for this long",
       0.1, 3600.0),
    # models
    _P("backend", "transformers", "inference backend: transformers (local checkpoints), remote (OpenAI-compatible "
       "server), ground_truth (TEST DOUBLE answering from a bag's recorded depth/poses)",
       choices=("transformers", "remote", "ground_truth")),
    _P("enabled_tasks", ["depth", "pose", "corr", "object"], "tasks to serve (depth, pose, corr, object)"),
    _P("model.depth_path", "", "VLM3-depth checkpoint directory"),
    _P("model.pose_path", "", "VLM3-pose checkpoint directory"),
    _P("model.corr_path", "", "VLM3-corr checkpoint directory"),
    _P("model.object_path", "", "VLM3-object checkpoint directory"),
    _P("model.device", "auto", "cpu, cuda, cuda:N or auto"),
    _P("model.dtype", "auto", "auto (bf16 on CUDA, fp32 on CPU), bfloat16, float16, float32",
       choices=("auto", "bfloat16", "float16", "float32")),
    _P("model.attn_implementation", "", "attention kernel: '' (library default), sdpa, eager, flash_attention_2"),
    _P("model.quantization", "none", "none, 8bit or 4bit (needs bitsandbytes)", choices=("none", "8bit", "4bit")),
    _P("model.max_pixels", 0, "image token budget in pixels for the processor (0 = checkpoint default)",
       0, 64 * 1024 * 1024),
    _P("model.engine_mode", "engine", "engine (shared image prefix, batched) or naive (one generate per question)",
       choices=("engine", "naive")),
    _P("model.batch_size", 32, "questions per batched generate in engine mode", 1, 1024),
    _P("max_new_tokens.depth", 256, "generation limit for depth answers (the reference uses 256)", 1, 8192),
    _P("max_new_tokens.object", 128, "generation limit for object answers", 1, 8192),
    _P("max_new_tokens.corr", 64, "generation limit for correspondence answers", 1, 8192),
    _P("max_new_tokens.pose", 96, "generation limit for each pose answer", 1, 8192),
    _P("model.depth_type", "range", "what the depth checkpoint's number means: range (along the ray) or z_depth",
       choices=DEPTH_TYPES),
    _P("remote.url", "http://127.0.0.1:8000/v1", "OpenAI-compatible base URL (vLLM, SGLang, transformers serve)"),
    _P("remote.model", "", "model name sent in requests ('' = omit)"),
    _P("remote.api_key_env", "VLM3_API_KEY", "environment variable holding the API key (never a parameter)"),
    _P("remote.timeout_s", 60.0, "per-request timeout", 0.1, 3600.0),
    _P("remote.max_concurrency", 4, "parallel requests to the server", 1, 256),
    _P("remote.retries", 2, "retries with backoff on connection errors and 5xx", 0, 10),
    _P("ground_truth.bag", "", "TEST DOUBLE backend only: bag with depth and ground-truth poses"),
    _P("ground_truth.depth_topic", "/camera/depth_registered/image_raw", "TEST DOUBLE: depth topic in that bag"),
    _P("ground_truth.world_frame", "world", "TEST DOUBLE: /tf parent of the ground-truth camera pose"),
    _P("prompts_file", "", "YAML file overriding prompt templates (keys of vlm3_ros.prompts.PromptSet); '' = the "
       "strings the checkpoints were trained on"),
    # preprocessing
    _P("rectify", True, "undistort with the CameraInfo model before focal unification"),
    _P("equalize_focal", False, "scale y by target/fy too when fx != fy (reference: scale both by target/fx)"),
    _P("max_long_edge", 2560, "cap of the unified image's long edge; the target focal is clamped beyond it",
       64, 16384),
    _P("interpolation", "auto", "resize interpolation", choices=("auto", *sorted(INTERPOLATIONS))),
    # requests
    _P("max_points_per_request", 256, "most pixels in one GetDepth / FindCorrespondence request", 1, 4096),
    _P("max_regions_per_request", 16, "most regions in one SpatialQuery", 1, 256),
    _P("max_question_chars", 2000, "longest SpatialQuery question", 1, 100000),
    _P("inference_queue_size", 8, "inference jobs that may wait; beyond it calls get BUSY", 1, 64),
    _P("request_timeout_s", 60.0, "a service call waiting longer than this gets TIMEOUT", 0.1, 3600.0),
    # sparse depth
    _P("sparse_depth.rate_hz", 1.0, "PointCloud2 rate on ~/sparse_depth (0 = off); only while subscribed",
       0.0, 100.0),
    _P("sparse_depth.pattern", "grid", "grid or pixels", choices=("grid", "pixels")),
    _P("sparse_depth.grid_cols", 8, "grid columns", 1, 256),
    _P("sparse_depth.grid_rows", 6, "grid rows", 1, 256),
    _P("sparse_depth.pixels", [0.0], "pattern=pixels: flat [x0, y0, x1, y1, ...] in original pixels"),
    _P("sparse_depth.depth_type", "z_depth", "depth kind in the cloud's points", choices=DEPTH_TYPES),
    # visual odometry
    _P("vo.enabled", True, "publish visual odometry from the pose task"),
    _P("vo.rate_hz", 1.0, "VO update rate", 0.01, 100.0),
    _P("vo.odom_frame", "odom", "REP 105 odometry frame"),
    _P("vo.base_frame", "base_link", "REP 105 robot base frame"),
    _P("vo.camera_extrinsic", [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5],
       "base -> camera optical frame [x, y, z, qx, qy, qz, qw] when /tf_static gives none "
       "(default: REP 103 optical axes at the base origin)"),
    _P("vo.use_tf_static", True, "take the base -> camera extrinsic from /tf_static when it is published"),
    _P("vo.keyframe_min_translation_m", 0.3, "new keyframe after this much translation", 0.0, 100.0),
    _P("vo.keyframe_min_rotation_deg", 15.0, "new keyframe after this much rotation", 0.0, 180.0),
    _P("vo.keyframe_max_frames", 10, "new keyframe after this many VO updates", 1, 100000),
    _P("vo.position_stddev_m", 0.05, "Odometry pose covariance: position standard deviation", 0.0, 100.0),
    _P("vo.rotation_stddev_deg", 2.0, "Odometry pose covariance: rotation standard deviation", 0.0, 180.0),
    _P("vo.publish_tf", True, "broadcast odom -> base on /tf"),
    # lifecycle
    _P("autostart", True, "configure and activate at start-up (no lifecycle manager needed)"),
)
SPECS = {p.name: p for p in PARAMS}


@dataclass(frozen=True)
class NodeConfig:
    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.values["enabled_tasks"])

    def model_path(self, task: str) -> str:
        return str(self.values[f"model.{task}_path"])


def validate_value(name: str, value: Any) -> Any:
    """Check one parameter against its spec; return the normalised value or raise ConfigError."""
    spec = SPECS.get(name)
    if spec is None:
        raise ConfigError(f"unknown parameter {name!r}")
    d = spec.default
    if isinstance(d, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
    elif isinstance(d, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    elif isinstance(d, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        value = float(value)
    elif isinstance(d, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
    elif isinstance(d, list):
        value = list(value)
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"{name}={value!r} is below its minimum {spec.min:g}: {spec.description}")
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"{name}={value!r} is above its maximum {spec.max:g}: {spec.description}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{name}={value!r} must be one of {list(spec.choices)}")
    return value


def build_config(values: dict[str, Any]) -> NodeConfig:
    """Validate every parameter and their combinations; return the frozen configuration."""
    full = {p.name: p.default for p in PARAMS}
    full.update(values)
    out = {name: validate_value(name, v) for name, v in full.items()}
    tasks = out["enabled_tasks"]
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ConfigError(f"enabled_tasks={tasks!r}: each must be one of {list(TASKS)}, at least one")
    if out["backend"] == "transformers":
        missing = [f"model.{t}_path" for t in tasks if not out[f"model.{t}_path"]]
        if missing:
            raise ConfigError(f"backend 'transformers' needs a checkpoint directory for each enabled task; set "
                              f"{', '.join(missing)} or remove the task from enabled_tasks")
    if out["backend"] == "ground_truth" and not out["ground_truth.bag"]:
        raise ConfigError("backend 'ground_truth' (TEST DOUBLE) needs ground_truth.bag")
    if out["backend"] == "remote" and not out["remote.url"].startswith(("http://", "https://")):
        raise ConfigError(f"remote.url={out['remote.url']!r} must start with http:// or https://")
    if out["sparse_depth.pattern"] == "pixels":
        px = out["sparse_depth.pixels"]
        if len(px) < 2 or len(px) % 2:
            raise ConfigError("sparse_depth.pixels must be a flat list [x0, y0, x1, y1, ...] with an even length")
    n_sparse = (out["sparse_depth.grid_cols"] * out["sparse_depth.grid_rows"] if out["sparse_depth.pattern"] == "grid"
                else len(out["sparse_depth.pixels"]) // 2)
    if out["sparse_depth.rate_hz"] > 0 and n_sparse > out["max_points_per_request"]:
        raise ConfigError(f"the sparse depth pattern has {n_sparse} points, more than max_points_per_request="
                          f"{out['max_points_per_request']}")
    ext = out["vo.camera_extrinsic"]
    if len(ext) != 7:
        raise ConfigError("vo.camera_extrinsic must be [x, y, z, qx, qy, qz, qw]")
    qn = sum(v * v for v in ext[3:]) ** 0.5
    if abs(qn - 1.0) > 1e-3:
        raise ConfigError(f"vo.camera_extrinsic quaternion has norm {qn:.4f}; it must be a unit quaternion")
    if out["vo.enabled"] and "pose" not in tasks:
        raise ConfigError("vo.enabled needs the pose task in enabled_tasks (or set vo.enabled false)")
    if out["sparse_depth.rate_hz"] > 0 and "depth" not in tasks:
        raise ConfigError("sparse_depth.rate_hz > 0 needs the depth task (or set it to 0)")
    if out["remote.api_key_env"] and not out["remote.api_key_env"].replace("_", "").isalnum():
        raise ConfigError("remote.api_key_env must name an environment variable")
    return NodeConfig(out)


def load_prompts(path: str) -> Any:
    """The PromptSet from a YAML override file ('' = the contract's strings)."""
    import yaml

    from vlm3_ros.prompts import PromptError, PromptSet

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


def api_key(cfg: NodeConfig) -> str | None:
    """The remote API key, from the environment only (never a parameter, never logged)."""
    name = cfg["remote.api_key_env"]
    return os.environ.get(name) if name else None
