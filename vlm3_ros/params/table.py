"""The perception node's parameters: one table of (name, default, range, description).

The per-task rows (``model.<task>_path``, ``max_new_tokens.<task>``), ``enabled_tasks`` and the
``backend`` choices are generated from the task and backend registries. The node declares its
ROS parameters from this table; ``vlm3-ros eval``, the bring-up, the launch file and the tests
read it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlm3_ros.geometry.backproject import DEPTH_TYPES
from vlm3_ros.geometry.unify import INTERPOLATIONS
from vlm3_ros.inference.backend_registry import BACKENDS
from vlm3_ros.inference.transformers_engine.engine_settings import QUANTIZATION
from vlm3_ros.tasks.task_registry import TASK_NAMES, TASKS

NODE_NAME = "vlm3_perception"


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


def _task_rows() -> tuple[ParamSpec, ...]:
    paths = tuple(_P(s.model_param, "", f"{s.checkpoint} checkpoint directory ({s.title})") for s in TASKS.values())
    tokens = tuple(_P(s.tokens_param, s.max_new_tokens, f"generation limit for {s.name} answers", 1, 8192)
                   for s in TASKS.values())
    return paths + tokens


def _remote_rows() -> tuple[ParamSpec, ...]:
    """Per-task servers: VLM3 is one checkpoint per task, so a robot usually runs one server per
    checkpoint (tasks may share one)."""
    out: list[ParamSpec] = []
    for s in TASKS.values():
        out.append(_P(f"remote.{s.name}_url", "", f"server of the {s.name} task ('' = remote.url)"))
        out.append(_P(f"remote.{s.name}_model", "", f"model name of the {s.name} task on its server "
                      "('' = remote.model)"))
    return tuple(out)


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
    _P("time_jump_s", 1.0, "an image stamp this far behind the newest means the time source restarted (bag loop, "
       "camera restart): the frame cache and VO restart instead of dropping every later frame", 0.0, 86400.0),
    _P("camera_frame", "", "optical frame of the camera for the TF extrinsic ('' = the image header's frame_id)"),
    _P("frame_cache_size", 30, "recent frames kept for BY_STAMP queries", 1, 600),
    _P("max_image_pixels", 4096 * 4096, "largest accepted image (width*height); larger ones are rejected",
       1, 64 * 1024 * 1024),
    _P("camera_timeout_s", 5.0, "warn (and report in diagnostics) when no frame arrived for this long",
       0.1, 3600.0),
    # models
    _P("backend", "transformers", "inference backend: " + ", ".join(
        f"{k.name} ({k.description})" for k in BACKENDS.values()), choices=tuple(BACKENDS)),
    _P("enabled_tasks", list(TASK_NAMES), f"tasks to serve ({', '.join(TASK_NAMES)})"),
    *_task_rows(),
    _P("model.device", "auto", "cpu, cuda, cuda:N or auto"),
    _P("model.dtype", "auto", "auto (bf16 on CUDA, fp32 on CPU), bfloat16, float16, float32",
       choices=("auto", "bfloat16", "float16", "float32")),
    _P("model.attn_implementation", "", "attention kernel: '' (library default), sdpa, eager, flash_attention_2"),
    _P("model.quantization", "none", "weight-only quantisation at load (torchao): none, int8 (per output row) or "
       "int4 (per group of 128 inputs; on CUDA bfloat16 only) of the text and vision linear layers; a quarter to "
       "a half of the weight memory, docs/hardware.md", choices=QUANTIZATION),
    _P("model.memory_check", True, "at configure, compare the memory plan of the enabled tasks (weights, prefix "
       "cache, kept graphs, batch KV, activations; vlm3-ros plan prints it) with the device's free memory and "
       "refuse to configure, naming the settings that would fit, when it does not fit"),
    _P("model.max_pixels", 0, "image token budget in pixels for the processor (0 = checkpoint default)",
       0, 64 * 1024 * 1024),
    _P("model.engine_mode", "engine", "engine (shared image prefix, batched) or naive (one generate per question)",
       choices=("engine", "naive")),
    _P("model.batch_size", 32, "questions per batched generate in engine mode", 1, 1024),
    _P("model.decode_graph", "cuda", "engine answer steps: cuda (fixed shapes, each step replayed as one captured "
       "CUDA graph on a CUDA device, static steps elsewhere), static (fixed shapes, fewer operations per step, never "
       "captured) or off (the cache grows step by step)",
       choices=("off", "static", "cuda")),
    _P("model.graph_slots", 2, "decode_graph cuda: captured answer steps kept for later batches of the same shape "
       "(each holds its batch's own keys/values: rows x (question + answer tokens) x layers); 0 = capture per batch",
       0, 64),
    _P("model.compile_step", False, "engine answer steps with fixed shapes (decode_graph static or cuda) compiled "
       "with torch.compile (inductor) at configure, on a dummy frame; on CUDA the captured graphs replay the compiled "
       "step; compiled code is cached on disk under the package's cache directory"),
    _P("model.prefix_cache_mb", 512.0, "prefilled image prefixes (the frame's KV after vision encode + prefill) kept "
       "for reuse by later requests, the sparse-depth producer and VO on the same frame; LRU by bytes (the KV "
       "and the frame's image), 0 = off",
       0.0, 1e6),
    _P("model.image_processing", "device", "device: the checkpoint processor's resize/normalise/patchify on the "
       "model's device from the uint8 image; pil: the checkpoint's own (CPU, PIL) processor, the reference",
       choices=("device", "pil")),
    _P("model.depth_type", "range", "what the depth checkpoint's number means: range (along the ray) or z_depth",
       choices=DEPTH_TYPES),
    _P("remote.url", "http://127.0.0.1:8000/v1", "OpenAI-compatible base URL (vLLM, SGLang, transformers serve) "
       "of every task without its own remote.<task>_url"),
    _P("remote.model", "", "model name sent in requests ('' = omit; vLLM/SGLang: the --served-model-name)"),
    *_remote_rows(),
    _P("remote.api_key_env", "VLM3_API_KEY", "environment variable holding the API key (never a parameter)"),
    _P("remote.timeout_s", 60.0, "per-request timeout", 0.1, 3600.0),
    _P("remote.max_concurrency", 4, "parallel requests to the server", 1, 256),
    _P("remote.retries", 2, "retries with backoff on connection errors and 5xx", 0, 10),
    _P("ground_truth.bag", "", "TEST DOUBLE backend only: bag with depth and ground-truth poses"),
    _P("ground_truth.depth_topic", "/camera/depth_registered/image_raw", "TEST DOUBLE: depth topic in that bag"),
    _P("ground_truth.world_frame", "", "TEST DOUBLE: world frame of the ground-truth camera poses ('' = the root of "
       "the camera's TF tree in that bag)"),
    _P("ground_truth.camera_frame", "", "TEST DOUBLE: camera optical frame in that bag ('' = the depth's frame_id)"),
    _P("ground_truth.pose_topic", "", "TEST DOUBLE: PoseStamped/Odometry/TransformStamped ground truth ('' = TF)"),
    _P("prompts_file", "", "YAML file overriding prompt templates (keys of vlm3_ros.contract.prompts.PromptSet); '' = "
       "the strings the checkpoints were trained on"),
    # preprocessing
    _P("rectify", True, "undistort with the CameraInfo model before focal unification"),
    _P("equalize_focal", False, "scale y by target/fy too when fx != fy (reference: scale both by target/fx)"),
    _P("max_long_edge", 2560, "cap of the unified image's long edge; the target focal is clamped beyond it",
       64, 16384),
    _P("interpolation", "auto", "resize interpolation", choices=("auto", *sorted(INTERPOLATIONS))),
    _P("resample_once", False, "local models: render the unified view straight at the checkpoint processor's patch "
       "grid (one resampling instead of two; same size and intrinsics, slightly sharper pixels than the "
       "processor's own second resize, which the checkpoints were trained with)"),
    # requests
    _P("max_points_per_request", 256, "most pixels in one GetDepth / FindCorrespondence request", 1, 4096),
    _P("max_regions_per_request", 16, "most regions in one ObjectQuery", 1, 256),
    _P("max_question_chars", 2000, "longest ObjectQuery question", 1, 100000),
    _P("inference_queue_size", 8, "inference jobs that may wait; beyond it calls get BUSY", 1, 64),
    _P("merge_requests", True, "depth/correspondence requests on the same frame(s) that wait together run as one "
       "batch (one image prefix, shared decode steps), up to max_points_per_request; identical pose requests once"),
    _P("request_timeout_s", 60.0, "a service call waiting longer than this gets TIMEOUT", 0.1, 3600.0),
    # sparse depth
    _P("sparse_depth.rate_hz", 1.0, "PointCloud2 rate on ~/sparse_depth (0 = off; off by itself when depth is not "
       "enabled); only while subscribed", 0.0, 100.0),
    _P("sparse_depth.pattern", "grid", "grid or pixels", choices=("grid", "pixels")),
    _P("sparse_depth.grid_cols", 8, "grid columns", 1, 256),
    _P("sparse_depth.grid_rows", 6, "grid rows", 1, 256),
    _P("sparse_depth.pixels", [0.0], "pattern=pixels: flat [x0, y0, x1, y1, ...] in original pixels"),
    _P("sparse_depth.depth_type", "z_depth", "depth kind in the cloud's points", choices=DEPTH_TYPES),
    # visual odometry
    _P("vo.enabled", True, "publish visual odometry from the pose task (off by itself when pose is not enabled)"),
    _P("vo.rate_hz", 1.0, "VO update rate", 0.01, 100.0),
    _P("vo.odom_frame", "odom", "REP 105 odometry frame"),
    _P("vo.base_frame", "base_link", "REP 105 robot base frame"),
    _P("vo.camera_extrinsic", [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5],
       "base -> camera optical frame [x, y, z, qx, qy, qz, qw] when /tf_static gives none "
       "(default: REP 103 optical axes at the base origin)"),
    _P("vo.use_tf_static", True, "take the base -> camera extrinsic from the TF tree (/tf_static, and /tf for moving "
       "joints) when it has a chain from vo.base_frame to the camera frame; else vo.camera_extrinsic"),
    _P("vo.keyframe_min_translation_m", 0.3, "new keyframe after this much translation", 0.0, 100.0),
    _P("vo.keyframe_min_rotation_deg", 15.0, "new keyframe after this much rotation", 0.0, 180.0),
    _P("vo.keyframe_max_age_s", 5.0, "new keyframe after this long (whatever the frame rate)", 0.0, 3600.0),
    _P("vo.min_baseline_m", 0.1, "integrate a pose answer only when the camera moved this far from the keyframe "
       "(or turned vo.keyframe_min_rotation_deg): answers give distances to 0.01 m, so short steps are mostly "
       "rounding", 0.0, 100.0),
    _P("vo.position_stddev_m", 0.05, "Odometry pose covariance: position standard deviation", 0.0, 100.0),
    _P("vo.rotation_stddev_deg", 2.0, "Odometry pose covariance: rotation standard deviation", 0.0, 180.0),
    _P("vo.publish_tf", True, "broadcast odom -> base on /tf"),
    # lifecycle
    _P("autostart", True, "configure and activate at start-up (no lifecycle manager needed)"),
)
SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMS}

# Parameters a running node applies at once; every other one is read at configure (changing it
# while the node is configured is refused with the reason, it takes effect at the next configure).
LIVE: frozenset[str] = frozenset({
    "max_points_per_request", "max_regions_per_request", "max_question_chars", "request_timeout_s",
    "camera_timeout_s", "vo.position_stddev_m", "vo.rotation_stddev_deg", "vo.publish_tf",
})


def choices(name: str) -> tuple[str, ...]:
    """The values parameter ``name`` accepts, for every list of them outside this table (launch
    arguments, command-line flags, help texts)."""
    found = SPECS[name].choices
    if found is None:
        raise KeyError(f"parameter {name!r} takes any value, it has no choices")
    return found


def parameters_help(program: str) -> str:
    """The perception node's --help: how to run it and every parameter with default, range and
    meaning, from the table above (the same rows the node declares)."""
    lines = [
        f"usage: {program} [--ros-args [-r __ns:=/NS] [-p NAME:=VALUE ...] [--params-file FILE]]",
        "",
        f"Runs the vlm3_ros perception node ({NODE_NAME}). Parameters (config/perception.yaml is a params file",
        "with all of them; docs/ros.md explains topics, services and TF):",
    ]
    for spec in PARAMS:
        bounds = ""
        if spec.choices:
            bounds = " {" + ", ".join(spec.choices) + "}"
        elif spec.min is not None or spec.max is not None:
            bounds = f" [{spec.min}, {spec.max}]"
        lines.append(f"  {spec.name} (default {spec.default!r}{bounds}{', read-only' if spec.read_only else ''})")
        lines.append(f"      {spec.description}")
    return "\n".join(lines)
