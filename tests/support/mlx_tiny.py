"""Tiny random-weight mlx-lm llama models, written the way mlx-lm saves them.

A byte-level tokenizer (256 byte tokens and three special tokens, no merges)
keeps the vocabulary small, and random bytes exercise the UTF-8-safe
streaming detokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def _byte_of_char() -> dict[str, int]:
    """GPT-2's byte-to-printable-character table, inverted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


def write_byte_tokenizer(folder: Path) -> int:
    """tokenizer.json + tokenizer_config.json; returns the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "chat_template": CHATML,
        "model_max_length": 2048,
    }))
    return tokenizer.get_vocab_size()


def make_tiny_mlx_model(folder: Path, seed: int = 0, quantize: bool = False,
                        ascii_only: bool = True) -> Path:
    """A 2-layer llama (hidden size 64) with random weights, optionally 4-bit quantized.

    With `ascii_only`, the output rows of every token but printable ASCII are
    zeroed, so greedy replies are text that tokenizes back to the same ids.
    """
    import mlx.core as mx
    from mlx import nn
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_byte_tokenizer(folder)
    config: dict[str, object] = {
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "vocab_size": vocab_size, "max_position_embeddings": 2048,
        "rope_theta": 10000.0, "tie_word_embeddings": False,
    }
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    if ascii_only:
        byte_of = _byte_of_char()
        chars = sorted(byte_of)
        keep = [1.0 if 32 <= byte_of[c] < 127 else 0.0 for c in chars]
        keep += [0.0] * (vocab_size - len(keep))
        model.lm_head.weight = model.lm_head.weight * mx.array(keep)[:, None]
    if quantize:
        nn.quantize(model, group_size=32, bits=4)
        config["quantization"] = {"group_size": 32, "bits": 4}
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder
