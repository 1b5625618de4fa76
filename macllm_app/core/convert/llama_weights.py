"""GGUF llama tensors and hyper-parameters to an mlx-lm llama model.

GGUF names map to Hugging Face / mlx-lm names, and q/k rows, which GGUF
stores permuted for interleaved rotary embeddings, are put back in the
Hugging Face order, so the folder is a standard llama (`rope_traditional`
False) that mlx-lm exports back to GGUF correctly.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from macllm_app.core.convert.gguf_quants import GROUP_SIZE
from macllm_app.core.convert.gguf_source import GGUFContents
from macllm_app.core.convert.rope import llama3_scaling
from macllm_app.core.errors import ModelFileError

_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_LAYER = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_SUFFIXES = ("weight", "scales", "biases", "bias")
ROPE_FREQS = "rope_freqs.weight"
_BLOCK = re.compile(r"blk\.(\d+)\.(\w+)")


def _int(meta: dict[str, Any], key: str, label: str, default: int | None = None) -> int:
    value = meta.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ModelFileError(f"{label}: {key} is missing or not a positive integer")
    return value


def _float(meta: dict[str, Any], key: str, default: float) -> float:
    value = meta.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return default
    return float(str(np.float32(value)))  # 1e-05, not 9.999999747378752e-06


def module_name(gguf_module: str, n_layers: int) -> str | None:
    """The mlx-lm module path of a GGUF tensor name without its suffix, or None."""
    if gguf_module in _TOP:
        return _TOP[gguf_module]
    m = _BLOCK.fullmatch(gguf_module)
    if m and int(m.group(1)) < n_layers and m.group(2) in _LAYER:
        return f"model.layers.{int(m.group(1))}.{_LAYER[m.group(2)]}"
    return None


def unpermute_rows(w: Any, n_head: int) -> Any:
    """Inverse of llama.cpp's q/k permutation: GGUF row order -> Hugging Face order."""
    rows = w.shape[0]
    if rows % (2 * n_head):
        raise ValueError(f"{rows} rows do not split into {n_head} heads")
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2) \
        .reshape(w.shape)


def llama_config(contents: GGUFContents) -> dict[str, Any]:
    meta, label = contents.meta, contents.label
    if meta.get("llama.expert_count"):
        raise ModelFileError(f"{label}: mixture-of-experts llama models are not supported")
    hidden = _int(meta, "llama.embedding_length", label)
    n_head = _int(meta, "llama.attention.head_count", label)
    n_kv = _int(meta, "llama.attention.head_count_kv", label, n_head)
    head_dim = _int(meta, "llama.attention.key_length", label, hidden // n_head)
    if meta.get("llama.attention.value_length", head_dim) != head_dim:
        raise ModelFileError(f"{label}: different key and value head sizes are not supported")
    if meta.get("llama.rope.dimension_count", head_dim) != head_dim:
        raise ModelFileError(f"{label}: partial rotary embeddings are not supported")
    embedding = contents.arrays.get("token_embd.weight")
    if embedding is None or embedding.ndim != 2:
        raise ModelFileError(f"{label}: no token_embd.weight matrix")
    vocab = int(embedding.shape[0])  # the model's vocabulary, whatever llama.vocab_size says
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": _int(meta, "llama.block_count", label),
        "intermediate_size": _int(meta, "llama.feed_forward_length", label),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "rms_norm_eps": _float(meta, "llama.attention.layer_norm_rms_epsilon", 1e-5),
        "rope_theta": _float(meta, "llama.rope.freq_base", 10000.0),
        "vocab_size": vocab,
        "max_position_embeddings": _int(meta, "llama.context_length", label, 2048),
        "tie_word_embeddings": "output.weight" not in contents.arrays,
        "rope_traditional": False,
    }
    if head_dim * n_head != hidden:
        config["head_dim"] = head_dim
    scaling = meta.get("llama.rope.scaling.type")
    if scaling not in (None, "none"):
        factor = _float(meta, "llama.rope.scaling.factor", 1.0)
        if scaling != "linear":
            raise ModelFileError(f"{label}: rope scaling {scaling!r} is not supported")
        config["rope_scaling"] = {"type": "linear", "factor": factor}
    freqs = contents.arrays.get(ROPE_FREQS)
    if freqs is not None:
        if "rope_scaling" in config:
            raise ModelFileError(f"{label}: two kinds of rope scaling at once")
        llama3 = llama3_scaling(np.array(freqs), head_dim, config["rope_theta"])
        if llama3 is None:
            raise ModelFileError(f"{label}: its rope_freqs match no Llama 3 rope scaling")
        if llama3:
            config["rope_scaling"] = llama3
    return config


def map_weights(contents: GGUFContents, config: dict[str, Any]) -> tuple[
        dict[str, Any], dict[str, int | None]]:
    """mlx-lm weights, and each module's bits (None: not quantized)."""
    label = contents.label
    n_layers = config["num_hidden_layers"]
    heads = {"self_attn.q_proj": config["num_attention_heads"],
             "self_attn.k_proj": config["num_key_value_heads"]}
    weights: dict[str, Any] = {}
    bits: dict[str, int | None] = {}
    for name, source in contents.arrays.items():
        if name == ROPE_FREQS:  # in config.json as rope_scaling (see llama_config)
            continue
        array = source
        base, _, suffix = name.rpartition(".")
        target = module_name(base, n_layers) if suffix in _SUFFIXES else None
        if target is None:
            raise ModelFileError(f"{label}: tensor {name!r} is not part of a llama model "
                                 "this converter knows")
        n_head = next((h for k, h in heads.items() if target.endswith(k)), None)
        if n_head is not None:
            try:
                array = unpermute_rows(array, n_head)
            except ValueError as exc:
                raise ModelFileError(f"{label}: tensor {name!r}: {exc}") from None
        weights[f"{target}.{suffix}"] = array
        if suffix == "weight":
            bits[target] = contents.bits.get(base)
    for suffix in ("attention_bias", "mlp_bias"):
        config[suffix] = False
    for key in weights:
        if key.endswith(".bias"):
            config["mlp_bias" if ".mlp." in key else "attention_bias"] = True
    return dict(sorted(weights.items())), bits


def quantization_config(bits: dict[str, int | None]) -> dict[str, Any] | None:
    """mlx-lm's `quantization` entry: the most common setting as the default, and
    every module that differs (another bit width, or `False` when not quantized)."""
    counts = Counter(b for b in bits.values() if b is not None)
    if not counts:
        return None
    default = counts.most_common(1)[0][0]
    quant: dict[str, Any] = {"group_size": GROUP_SIZE, "bits": default}
    for module, b in sorted(bits.items()):
        if b is None and not module.endswith("norm"):
            quant[module] = False
        elif b is not None and b != default:
            quant[module] = {"group_size": GROUP_SIZE, "bits": b}
    return quant
