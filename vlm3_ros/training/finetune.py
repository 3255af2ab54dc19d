"""Fine-tuning a Qwen3-VL / VLM3 checkpoint on export-sft samples with transformers' Trainer.

The Trainer runs the loop (optimiser, schedule, gradient accumulation, checkpoints every
``save_steps``, resume from the last, evaluation, progress bar, logging); this module supplies the
data (frame groups: one image prefix + up to ``rows`` questions per step, :mod:`.batches`) and the
loss (:func:`.objective.answer_loss`: answer tokens only, logits only there, the prefix once).

``method="lora"``: peft LoRA adapters on the language model's attention and MLP projections;
at the end the adapters are MERGED into the weights, so the output is a plain checkpoint the node
loads unchanged (``model.<task>_path:=OUT``); the unmerged adapter is kept in ``OUT/adapter``.
``method="full"``: every language-model weight trains. The vision tower stays frozen unless
``train_vision``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vlm3_ros.training.batches import BatchBuilder, FrameGroup, frame_groups
from vlm3_ros.training.objective import (
    FrozenVisionFeatures,
    answer_loss,
    core_model,
    enable_shared_prefix,
    vision_frozen,
)
from vlm3_ros.training.sft_samples import read_jsonl, split_files

LOG = logging.getLogger("vlm3_ros.finetune")

METHODS = ("lora", "full")
EMBEDDINGS = ("none", "used", "all")
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# files of a checkpoint that the fine-tuned copy must not inherit (weights, markers of other origins)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
NOT_COPIED = {"model.safetensors.index.json", "config.json", "generation_config.json", "vlm3_ros_test_checkpoint.json",
              "vlm3_ros_finetune.json"}
MARKER = "vlm3_ros_finetune.json"


@dataclass(frozen=True)
class FinetuneConfig:
    data: str                        # an export-sft directory (train.jsonl, val.jsonl, images/)
    base: str                        # the checkpoint to start from
    out: str
    method: str = "lora"
    tasks: tuple[str, ...] = ()      # () = every task in the data
    max_steps: int = 200
    epochs: float = 0.0              # > 0: train this many epochs instead of max_steps
    learning_rate: float = 2e-4
    rows: int = 16                   # questions per step on one image set
    grad_accum: int = 1
    lora_rank: int = 16
    lora_alpha: int = 32
    train_vision: bool = False
    train_embeddings: str = "none"   # full: none | used (rows of tokens in the samples) | all (151,936 rows)
    device: str = "auto"
    dtype: str = "auto"              # auto: bf16 on CUDA, fp32 on CPU
    eval_steps: int = 50
    save_steps: int = 50
    seed: int = 0
    resume: bool = False
    label: str = ""                  # what the result is, written into its marker (e.g. "TOY demo model")

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not (Path(self.base) / "config.json").is_file():
            raise ValueError(f"--base {self.base!r} is not a transformers checkpoint directory (no config.json)")
        if not (Path(self.data) / "train.jsonl").is_file():
            raise ValueError(f"{self.data!r} holds no train.jsonl: make it with vlm3-ros export-sft BAG --out DIR")
        if self.train_embeddings not in EMBEDDINGS:
            raise ValueError(f"train_embeddings must be one of {EMBEDDINGS}, got {self.train_embeddings!r}")
        if self.rows < 1 or self.max_steps < 1 or self.learning_rate <= 0:
            raise ValueError("rows and max_steps must be >= 1 and the learning rate > 0")


class GroupDataset:
    """A torch-style dataset of frame groups, each item already the batch (batch size 1)."""

    def __init__(self, groups: list[FrameGroup], builder: BatchBuilder) -> None:
        self.groups = groups
        self.builder = builder

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.builder(self.groups[i])


def unwrap_one(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The data collator: each item is a whole frame-group batch."""
    if len(items) != 1:
        raise ValueError("frame-group batches come one per step (per_device_train_batch_size=1)")
    return items[0]


def load_groups(cfg: FinetuneConfig, builder_rows: int) -> dict[str, list[FrameGroup]]:
    files = split_files(Path(cfg.data))
    out = {}
    for split, path in files.items():
        samples = read_jsonl(path) if path.is_file() else []
        if cfg.tasks:
            samples = [s for s in samples if s.task in cfg.tasks]
        out[split] = frame_groups(samples, Path(cfg.data), builder_rows)
    return out


def _trainer_class() -> Any:
    from transformers import Trainer

    class FrameGroupTrainer(Trainer):
        """transformers' Trainer with the frame-group loss (answer tokens only)."""

        vision: FrozenVisionFeatures | None = None

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            loss = answer_loss(model, inputs, self.vision)
            return (loss, {"loss": loss}) if return_outputs else loss

    return FrameGroupTrainer


def used_token_ids(groups: list[FrameGroup], builder: BatchBuilder) -> list[int]:
    """Every token id the samples' rows (prompt text and answers) contain."""
    ids: set[int] = set()
    for g in groups:
        ids.update(int(t) for t in builder(g)["input_ids"].unique())
    return sorted(ids)


def restrict_embedding_rows(model: Any, rows: list[int]) -> None:
    """Train only these rows of the (tied) token embedding: the gradient of every other row is
    zeroed, so with weight decay 0 the optimiser leaves them exactly as they were (their Adam
    moments stay 0). A model that must learn an answer vocabulary without moving 151k rows."""
    import torch

    emb = core_model(model).get_input_embeddings().weight
    keep = torch.zeros(emb.shape[0], 1, dtype=emb.dtype, device=emb.device)
    keep[rows] = 1
    emb.requires_grad = True
    emb.register_hook(lambda g: g * keep)


def load_for_training(cfg: FinetuneConfig, model: Any = None, processor: Any = None) -> tuple[Any, Any, str]:
    """The model (trainable parts set, LoRA attached) and processor of ``cfg.base``; or, with
    ``model`` and ``processor`` given (benchmarks of a random-weight architecture), those."""
    import torch
    from transformers import AutoModelForImageTextToText

    from vlm3_ros.inference.transformers_engine.model_loading import load_processor, resolve_device, resolve_dtype

    device = resolve_device(cfg.device)
    if model is None:
        model = AutoModelForImageTextToText.from_pretrained(cfg.base, dtype=resolve_dtype(cfg.dtype, device))
    if processor is None:
        processor = load_processor(cfg.base)
    enable_shared_prefix(model)
    for name, p in model.named_parameters():
        vision = name.startswith("model.visual")
        embedding = "embed_tokens" in name or name.startswith("lm_head")
        p.requires_grad = (cfg.train_vision or not vision) and (cfg.train_embeddings == "all" or not embedding)
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                                 target_modules=LORA_TARGETS, bias="none"))
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    LOG.info("%s fine-tuning of %s on %s: %.2fM trainable parameters", cfg.method, cfg.base, device, trainable / 1e6)
    torch.manual_seed(cfg.seed)
    return model, processor, device


def finetune(cfg: FinetuneConfig, show_progress: bool = True) -> dict[str, Any]:
    """Train, save a checkpoint the node loads, plot the losses; returns the run's record."""
    from transformers import TrainingArguments

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model, processor, device = load_for_training(cfg)
    builder = BatchBuilder(processor)
    groups = load_groups(cfg, cfg.rows)
    if not groups["train"]:
        raise ValueError(f"{cfg.data}: no training samples" + (f" for tasks {cfg.tasks}" if cfg.tasks else ""))
    if cfg.train_embeddings == "used":
        restrict_embedding_rows(model, used_token_ids(groups["train"], builder))
    train_ds, val_ds = GroupDataset(groups["train"], builder), GroupDataset(groups["val"], builder)
    has_val = len(val_ds) > 0
    args = TrainingArguments(
        output_dir=str(out / "trainer"), per_device_train_batch_size=1, per_device_eval_batch_size=1,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        max_steps=-1 if cfg.epochs > 0 else cfg.max_steps, num_train_epochs=cfg.epochs if cfg.epochs > 0 else 1,
        lr_scheduler_type="cosine", warmup_steps=max(1, cfg.max_steps // 20), weight_decay=0.0,
        logging_steps=max(1, min(10, cfg.eval_steps)), eval_strategy="steps" if has_val else "no",
        eval_steps=cfg.eval_steps, save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2,
        report_to=[], disable_tqdm=not show_progress, remove_unused_columns=False, label_names=["labels"],
        prediction_loss_only=True, dataloader_num_workers=0, seed=cfg.seed, use_cpu=device == "cpu",
        bf16=str(next(model.parameters()).dtype) == "torch.bfloat16")
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds if has_val else None,
                               data_collator=unwrap_one)
    if vision_frozen(model):
        trainer.vision = FrozenVisionFeatures()
    record: dict[str, Any] = {"config": asdict(cfg), "device": device, "train_groups": len(train_ds),
                              "val_groups": len(val_ds), "val_loss_before": None, "val_loss_after": None}
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(out / "trainer")) if cfg.resume and (out / "trainer").is_dir() else None
    record["resumed_from"] = last
    if has_val and last is None:
        record["val_loss_before"] = trainer.evaluate()["eval_loss"]
    t0 = time.monotonic()
    result = trainer.train(resume_from_checkpoint=last)
    record["train_s"] = round(time.monotonic() - t0, 2)
    record["steps"] = int(result.global_step)
    record["s_per_step"] = round(record["train_s"] / max(1, result.global_step), 4)
    if has_val:
        record["val_loss_after"] = trainer.evaluate()["eval_loss"]
    record["log_history"] = trainer.state.log_history
    save_checkpoint(model, cfg, out)
    plot_losses(trainer.state.log_history, out / "loss.png", cfg, record["val_loss_before"])
    (out / "finetune.json").write_text(json.dumps(record, indent=2, default=str))
    return record


def save_checkpoint(model: Any, cfg: FinetuneConfig, out: Path) -> None:
    """``out``: the merged weights + the base's tokenizer/processor files + a marker saying what
    this is; loadable by ``AutoModelForImageTextToText``/the node unchanged."""
    if cfg.method == "lora":
        model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    core = core_model(model)
    core.set_attn_implementation("sdpa")     # the saved config must not name this process's attention
    for f in Path(cfg.base).iterdir():
        if f.is_file() and f.name not in NOT_COPIED and not f.name.endswith(WEIGHT_SUFFIXES):
            shutil.copy2(f, out / f.name)
    core.save_pretrained(out)
    (out / MARKER).write_text(json.dumps({
        "what": cfg.label or "a checkpoint fine-tuned by vlm3-ros finetune",
        "base": str(cfg.base), "data": str(cfg.data), "method": cfg.method,
        "lora": "merged into the weights (adapter kept in adapter/)" if cfg.method == "lora" else None,
    }, indent=2))


def plot_losses(history: list[dict[str, Any]], path: Path, cfg: FinetuneConfig,
                val_before: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and "step" in h]
    if val_before is not None:
        val.insert(0, (0, val_before))      # evaluated before the first step
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train (answer tokens)")
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation (held-out frames)")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy per answer token")
    ax.set_yscale("log")
    ax.set_title(f"vlm3-ros finetune: {cfg.method} on {Path(cfg.data).name}, base {Path(cfg.base).name}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
