"""What the transformers backend needs in device memory, from arithmetic alone: the checkpoint's
``config.json`` (its layer shapes), the precision, and the engine's settings (prefix cache, kept
answer-step graphs, batch size, answer tokens). No torch needed except to ask a device how much is
free (:func:`free_bytes`).

Per task (tasks with the same checkpoint share one model, :func:`plan_tasks`):

- ``weights``: every parameter at its stored size (int8: one byte per weight of the quantised
  linear layers plus a scale and a zero point per output row; int4: half a byte plus a scale and a zero point per
  group of ``group_size`` weights; the embedding, which the output layer shares, stays at the
  activation dtype, as do norms and biases);
- ``prefix_cache``: the frame prefix cache's byte bound (``prefix_cache_mb``);
- ``kept_graphs``: ``graph_slots`` captured answer steps (CUDA with ``decode_graph: cuda`` only),
  each holding its batch's own keys/values and a private copy of the image prefix's;
- ``batch_kv``: the running batch's own keys/values (rows x (question + answer tokens)) and the
  image prefix's;
- ``activations``: the largest transient of the vision encoder, the prefix prefill, the questions'
  prefill (every row's question tokens through an MLP at once, plus each row's last logits) and an
  answer step.

All tasks at once: weights, prefix caches and kept graphs add up; one inference worker runs one
job at a time, so only the largest ``batch_kv + activations`` of the tasks counts once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vlm3_ros.contract.question import BackendError

MIB = 2**20
PRECISIONS = ("bfloat16", "float16", "float32", "int8", "int4")
BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
INT4_GROUP_SIZES = (128, 64, 32)          # the largest that divides a layer's input width is used
# One depth frame of the bundled bag at the depth task's 1000 px focal length: 1136 image tokens
IMAGE_TOKENS = 1136
TEMPLATE_TOKENS = 40                      # chat template around the image(s) and the question's shared lead
QUESTION_TOKENS = 96                      # a question's own tokens (the depth prompt: 86 with coordinates)
USABLE_FRACTION = 0.9                     # share of the free memory a plan may use (allocator slack)
BUNDLED_4B = Path(__file__).resolve().parent.parent / "data" / "qwen3_vl_4b_instruct_config.json"


@dataclass(frozen=True)
class ModelShape:
    """The widths of a Qwen3-VL checkpoint that decide its memory (from its config.json)."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    vision_depth: int
    vision_hidden: int
    vision_intermediate: int
    vision_out: int
    patch: int
    merge: int
    temporal: int
    in_channels: int
    vision_positions: int
    deepstack: int

    @classmethod
    def from_config(cls, conf: Mapping[str, Any]) -> ModelShape:
        t, v = conf["text_config"], conf["vision_config"]
        tied = bool(conf.get("tie_word_embeddings", t.get("tie_word_embeddings", False)))
        return cls(layers=t["num_hidden_layers"], hidden=t["hidden_size"], heads=t["num_attention_heads"],
                   kv_heads=t["num_key_value_heads"],
                   head_dim=t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"],
                   intermediate=t["intermediate_size"], vocab=t["vocab_size"], tied=tied,
                   vision_depth=v["depth"], vision_hidden=v["hidden_size"], vision_intermediate=v["intermediate_size"],
                   vision_out=v["out_hidden_size"], patch=v["patch_size"], merge=v["spatial_merge_size"],
                   temporal=v["temporal_patch_size"], in_channels=v.get("in_channels", 3),
                   vision_positions=v.get("num_position_embeddings", 0),
                   deepstack=len(v.get("deepstack_visual_indexes", ())))

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> ModelShape:
        return cls.from_config(json.loads((Path(path) / "config.json").read_text()))

    def linear_layers(self) -> list[tuple[int, int, int]]:
        """(count, out features, in features) of every linear layer that quantisation converts: the
        text layers' attention and MLP projections and the vision encoder's (blocks and mergers).
        The output layer is left out (it shares the embedding's weight, or is read by the greedy head)."""
        h, d, vh, vi = self.hidden, self.head_dim, self.vision_hidden, self.vision_intermediate
        text = [(self.layers, self.heads * d, h), (2 * self.layers, self.kv_heads * d, h),
                (self.layers, h, self.heads * d), (2 * self.layers, self.intermediate, h),
                (self.layers, h, self.intermediate)]
        merged = vh * self.merge**2
        vision = [(self.vision_depth, 3 * vh, vh), (self.vision_depth, vh, vh), (self.vision_depth, vi, vh),
                  (self.vision_depth, vh, vi), (1 + self.deepstack, merged, merged),
                  (1 + self.deepstack, self.vision_out, merged)]
        return text + vision

    def other_parameters(self) -> int:
        """Parameters outside those linear layers' weights: embedding (and an untied output
        layer), norms, biases, the patch embedding and the vision position table."""
        h, vh, merged = self.hidden, self.vision_hidden, self.vision_hidden * self.merge**2
        text = self.vocab * h * (1 if self.tied else 2) + self.layers * (2 * h + 2 * self.head_dim) + h
        vision_biases = self.vision_depth * (3 * vh + vh + self.vision_intermediate + vh)
        vision_norms = self.vision_depth * 4 * vh + 2 * vh + self.deepstack * 2 * merged
        merger_biases = (1 + self.deepstack) * (merged + self.vision_out)
        patch = self.in_channels * self.temporal * self.patch**2 * vh + vh
        return text + vision_biases + vision_norms + merger_biases + patch + self.vision_positions * vh

    def kv_bytes_per_token(self, act_bytes: int) -> int:
        return self.layers * 2 * self.kv_heads * self.head_dim * act_bytes


def int4_group(in_features: int) -> int:
    """The int4 group size for a layer of ``in_features`` inputs (0: left unquantised)."""
    return next((g for g in INT4_GROUP_SIZES if in_features % g == 0), 0)


def padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def weight_bytes(shape: ModelShape, precision: str, act_bytes: int, cuda: bool = False) -> int:
    """The stored size of the model's parameters at ``precision`` (activations in ``act_bytes``).
    int4 on CUDA (the tinygemm layout) pads each layer's inputs to a multiple of 1024 and its
    outputs to a multiple of 8 before packing."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    total = shape.other_parameters() * act_bytes
    for count, out, inp in shape.linear_layers():
        if precision == "int8":
            per = out * inp + out * 5                    # int8 weights + a float32 scale and int8 zero per row
        elif precision == "int4" and int4_group(inp):
            k, n = (padded(inp, 1024), padded(out, 8)) if cuda else (inp, out)
            per = n * k // 2 + (k // int4_group(inp)) * n * 2 * act_bytes      # + scale, zero per group
        else:
            per = out * inp * (act_bytes if precision in ("int4", "int8") else BYTES[precision])
        total += count * per
    return total


@dataclass(frozen=True)
class Workload:
    """What one task's backend runs: image tokens in its prefix (two images for pose and
    correspondence), rows per batch, a question's own tokens, answer tokens, the frame prefix
    cache's bound and the answer-step graphs kept (0 off CUDA or without decode_graph cuda)."""

    images: int = 1
    image_tokens: int = IMAGE_TOKENS
    rows: int = 32
    question_tokens: int = QUESTION_TOKENS
    answer_tokens: int = 64
    prefix_cache_mib: float = 512.0
    graph_slots: int = 2

    @property
    def prefix_tokens(self) -> int:
        return self.images * self.image_tokens + TEMPLATE_TOKENS


@dataclass(frozen=True)
class TaskPlan:
    """One backend's memory in bytes, by part (module docstring)."""

    tasks: tuple[str, ...]
    precision: str
    weights: int
    prefix_cache: int
    kept_graphs: int
    batch_kv: int
    activations: int
    shape: ModelShape | None = field(default=None, compare=False, repr=False)
    work: Workload = field(default_factory=Workload, compare=False, repr=False)
    act_bytes: int = field(default=2, compare=False, repr=False)
    cuda: bool = field(default=False, compare=False, repr=False)

    def replan(self, precision: str | None = None, **work: Any) -> TaskPlan:
        """This backend's plan at another precision or workload (``Workload`` fields)."""
        assert self.shape is not None
        return plan_backend(self.shape, precision or self.precision, self.act_bytes, replace(self.work, **work),
                            self.tasks, self.cuda)

    @property
    def resident(self) -> int:
        """What stays allocated between jobs: weights, prefix cache, kept graphs."""
        return self.weights + self.prefix_cache + self.kept_graphs

    @property
    def transient(self) -> int:
        """What a running job adds: its batch's keys/values and the activations."""
        return self.batch_kv + self.activations

    @property
    def total(self) -> int:
        return self.resident + self.transient


def plan_backend(shape: ModelShape, precision: str, act_bytes: int, work: Workload,
                 tasks: tuple[str, ...] = (), cuda: bool = False) -> TaskPlan:
    """The memory of one backend of ``shape`` running ``work`` (module docstring) on a CUDA
    device or not (``cuda``: int4's layout)."""
    kv_tok = shape.kv_bytes_per_token(act_bytes)
    own = work.rows * (work.question_tokens + work.answer_tokens) * kv_tok
    prefix = work.prefix_tokens * kv_tok
    mlp_width = 3 * shape.intermediate + 6 * shape.hidden          # gate, up, their product; residual, norms, attention
    logits = work.rows * shape.vocab * 4                            # each row's last logits (float32 for the argmax)
    patches = work.images * work.image_tokens * shape.merge**2
    vision = patches * (2 * shape.vision_intermediate + 6 * shape.vision_hidden) * act_bytes
    prefill = work.prefix_tokens * mlp_width * act_bytes
    questions = work.rows * work.question_tokens * mlp_width * act_bytes + logits
    step = work.rows * mlp_width * act_bytes + logits
    return TaskPlan(tasks=tasks, precision=precision, weights=weight_bytes(shape, precision, act_bytes, cuda),
                    prefix_cache=int(work.prefix_cache_mib * MIB), kept_graphs=work.graph_slots * (own + prefix),
                    batch_kv=own + prefix, activations=max(vision, prefill, questions, step), shape=shape,
                    work=work, act_bytes=act_bytes, cuda=cuda)


@dataclass(frozen=True)
class MemoryPlan:
    """Every backend's plan and what they need at once on one device."""

    backends: tuple[TaskPlan, ...]
    device: str
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        """Resident parts of every backend plus the largest one job adds."""
        return sum(b.resident for b in self.backends) + max((b.transient for b in self.backends), default=0)

    def fits(self, free: int, usable: float = USABLE_FRACTION) -> bool:
        return self.total <= free * usable

    def table(self) -> list[str]:
        """The plan as Markdown rows, in MiB."""
        rows = ["| tasks | precision | weights | prefix cache | kept graphs | batch KV | activations | total |",
                "|---|---|---|---|---|---|---|---|"]
        for b in self.backends:
            cells = (b.weights, b.prefix_cache, b.kept_graphs, b.batch_kv, b.activations, b.total)
            rows.append(f"| {', '.join(b.tasks)} | {b.precision} | " + " | ".join(f"{c / MIB:.0f}" for c in cells)
                        + " |")
        rows.append(f"| all at once | | | | | | | {self.total / MIB:.0f} |")
        return rows

    def refusal(self, free: int, usable: float = USABLE_FRACTION) -> str:
        """Why the plan does not fit in ``free`` bytes and the settings that would make it fit."""
        need, have = self.total / MIB, free * usable / MIB
        parts = "; ".join(f"{'+'.join(b.tasks)}: weights {b.weights / MIB:.0f}, prefix cache "
                          f"{b.prefix_cache / MIB:.0f}, kept graphs {b.kept_graphs / MIB:.0f}, batch KV "
                          f"{b.batch_kv / MIB:.0f}, activations {b.activations / MIB:.0f}" for b in self.backends)
        return (f"the models need {need:.0f} MiB on {self.device} but {have:.0f} MiB is usable "
                f"({usable:.0%} of {free / MIB:.0f} MiB free) [MiB per backend: {parts}]. "
                f"To fit: {'; '.join(self.knobs(free, usable))}")

    def with_backends(self, **change: Any) -> MemoryPlan:
        """The plan with every backend replanned (:meth:`TaskPlan.replan` arguments)."""
        return MemoryPlan(tuple(b.replan(**change) for b in self.backends), self.device, self.notes)

    def knobs(self, free: int, usable: float = USABLE_FRACTION) -> list[str]:
        """Settings that lower the plan, each with the total it gives; those that fit first."""
        options: list[tuple[str, MemoryPlan]] = []
        for q in ("int8", "int4"):
            if self.backends[0].precision not in (q, "int4"):
                options.append((f"model.quantization: {q}", self.with_backends(precision=q)))
        if any(b.kept_graphs for b in self.backends):
            options.append(("model.graph_slots: 0", self.with_backends(graph_slots=0)))
        if any(b.prefix_cache > 128 * MIB for b in self.backends):
            options.append(("model.prefix_cache_mb: 128", self.with_backends(prefix_cache_mib=128.0)))
        rows = max(b.work.rows for b in self.backends)
        if rows > 1:
            options.append((f"model.batch_size: {max(1, rows // 4)}",
                            MemoryPlan(tuple(b.replan(rows=min(b.work.rows, max(1, rows // 4))) for b in self.backends),
                                       self.device)))
        if len(self.backends) > 1:
            largest = max(self.backends, key=lambda b: b.resident)
            kept = tuple(b for b in self.backends if b is not largest)
            options.append((f"fewer enabled_tasks (without {'+'.join(largest.tasks)}), or backend: remote for some",
                            MemoryPlan(kept, self.device)))
        out = [f"{name} (total {p.total / MIB:.0f} MiB{': fits' if p.fits(free, usable) else ''})"
               for name, p in options]
        return sorted(out, key=lambda s: not s.endswith(": fits)"))


def plan_tasks(shapes: Mapping[str, ModelShape], keys: Mapping[str, str], precision: str, act_bytes: int,
               work: Mapping[str, Workload], device: str, notes: Sequence[str] = ()) -> MemoryPlan:
    """The plan of ``work``'s tasks, tasks with the same ``keys`` value (checkpoint) as one backend:
    one model, one prefix cache, one graph pool, the larger workload of its tasks."""
    groups: dict[str, list[str]] = {}
    for task in work:
        groups.setdefault(keys[task], []).append(task)
    plans = []
    for key, tasks in groups.items():
        w = max((work[t] for t in tasks), key=lambda x: (x.images, x.rows * (x.question_tokens + x.answer_tokens)))
        plans.append(plan_backend(shapes[key], precision, act_bytes, w, tuple(tasks), device.startswith("cuda")))
    return MemoryPlan(tuple(plans), device, tuple(notes))


def free_bytes(device: str) -> tuple[int | None, str]:
    """Free memory on ``device`` (CUDA: the driver's free bytes; CPU: the kernel's MemAvailable)
    and where the number came from; None where it cannot be read."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), f"torch.cuda.mem_get_info({device})"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "/proc/meminfo MemAvailable"
    except OSError:
        pass
    return None, "no /proc/meminfo: the CPU's free memory is unknown"


def check_fits(plan: MemoryPlan, free: int | None) -> None:
    """Raise BackendError with :meth:`MemoryPlan.refusal` when the plan does not fit ``free``."""
    if free is not None and not plan.fits(free):
        raise BackendError(plan.refusal(free))


TWO_IMAGE_TASKS = frozenset({"pose", "corr"})


def precision_of(quantization: str, dtype: str, device: str) -> tuple[str, int]:
    """(precision, activation bytes) of a backend: the quantisation where there is one, else the
    dtype (auto: bfloat16 on CUDA, float32 elsewhere, as model_loading.resolve_dtype)."""
    act = dtype if dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
    return (quantization if quantization in ("int8", "int4") else act), BYTES[act]


def node_plan(configs: Mapping[str, Any], answer_tokens: Mapping[str, int], rows: Mapping[str, int], device: str,
              image_tokens: int = IMAGE_TOKENS) -> MemoryPlan:
    """The plan of a node's transformers backends (``configs``: task -> TransformersConfig) on
    ``device`` (resolved: cpu, cuda, cuda:N): ``answer_tokens`` the tasks' generation limits,
    ``rows`` the most questions one request asks per task. A checkpoint folder without a
    config.json is planned as the bundled Qwen3-VL-4B (noted)."""
    shapes: dict[str, ModelShape] = {}
    keys: dict[str, str] = {}
    work: dict[str, Workload] = {}
    notes: list[str] = []
    precisions = set()
    for task, cfg in configs.items():
        key = str(Path(cfg.path).resolve()) if cfg.path else f"<{task}>"
        if key not in shapes:
            if cfg.path and (Path(cfg.path) / "config.json").is_file():
                shapes[key] = ModelShape.from_checkpoint(cfg.path)
            else:
                shapes[key] = ModelShape.from_config(json.loads(BUNDLED_4B.read_text()))
                notes.append(f"{task}: no config.json at {cfg.path!r}: planned as Qwen3-VL-4B")
        keys[task] = key
        precision, act = precision_of(cfg.quantization, cfg.dtype, device)
        precisions.add((precision, act))
        engine = cfg.mode == "engine"
        graphs = cfg.graph_slots if engine and device.startswith("cuda") and cfg.decode_graph == "cuda" else 0
        work[task] = Workload(images=2 if task in TWO_IMAGE_TASKS else 1, image_tokens=image_tokens,
                              rows=min(cfg.batch_size, rows.get(task, cfg.batch_size)) if engine else 1,
                              answer_tokens=answer_tokens.get(task, 64),
                              prefix_cache_mib=cfg.prefix_cache_mb if engine else 0.0, graph_slots=graphs)
    if len(precisions) != 1:
        raise ValueError(f"one precision per node expected, got {sorted(precisions)}")
    (precision, act), = precisions
    return plan_tasks(shapes, keys, precision, act, work, device, notes)
