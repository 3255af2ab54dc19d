"""The floating-point work and weight bytes of one depth frame on a Qwen3-VL config (the compute
floor's arithmetic), shared by bench/engine_floor.py and bench/hardware_estimates.py."""

from __future__ import annotations


def floor(points: int, lead: int, own: int, prefix: int, answer: int, conf: dict) -> dict[str, float]:
    t, v = conf["text_config"], conf["vision_config"]
    h, inter, layers = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"]
    heads, kv, d, vocab = t["num_attention_heads"], t["num_key_value_heads"], t["head_dim"], t["vocab_size"]
    layer_params = h * heads * d + 2 * h * kv * d + heads * d * h + 3 * h * inter
    per_token = 2 * layer_params * layers                          # the text layers' matmuls

    def attention(context: float) -> float:                        # scores + weighted values, all layers
        return 4 * heads * d * context * layers

    vh, vi = v["hidden_size"], v["intermediate_size"]
    patches = prefix * v["spatial_merge_size"] ** 2
    vision = 2 * (4 * vh * vh + 2 * vh * vi) * v["depth"] * patches
    prefill = (prefix + lead) * per_token + (prefix + lead) * attention((prefix + lead) / 2)
    questions = points * own * (per_token + attention(prefix + lead + own / 2))
    step = points * (per_token + attention(prefix + lead + own + answer / 2) + 2 * h * vocab)
    weights_bytes = 2 * (layer_params * layers + h * vocab)       # bf16, read once per step
    return {"vision_tflop": vision / 1e12, "prefix_tflop": prefill / 1e12, "questions_tflop": questions / 1e12,
            "answer_tflop": answer * step / 1e12, "weights_gb": weights_bytes / 1e9}
