"""Build tiny MLX model folders by hand (config.json, safetensors via struct/json, tokenizer)."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]],
                      header_override: dict[str, object] | None = None) -> Path:
    """Tensors as name -> (dtype, shape), zero-filled; header_override replaces the header."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "U32": 4}
    header: dict[str, object] = {"__metadata__": {"format": "mlx"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header_override if header_override is not None else header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


def make_mlx_folder(folder: Path, quantized: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, object] = {
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 32,
        "max_position_embeddings": 1024,
    }
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {
        "model.embed_tokens.weight": ("F16", (32, 64)),
        "model.norm.weight": ("F16", (64,)),
    }
    if quantized:
        config["quantization"] = {"group_size": 32, "bits": 4}
        tensors.update({
            "model.layers.0.self_attn.q_proj.weight": ("U32", (64, 8)),
            "model.layers.0.self_attn.q_proj.scales": ("F16", (64, 2)),
            "model.layers.0.self_attn.q_proj.biases": ("F16", (64, 2)),
        })
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"auto_map": 0}}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))
    write_safetensors(folder / "model.safetensors", tensors)
    return folder
