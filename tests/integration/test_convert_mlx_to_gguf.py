"""MLX -> F16 GGUF: the converted default model goes back to GGUF and runs in llama.cpp.

The export dequantizes the Q4_1 folder, so its weights are the default model's
weights in float16: greedy tokens must equal llama.cpp's on the F16 copy that
llama.cpp itself makes of the default model (same weights, same engine).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from macllm_app.core.convert.mlx_to_gguf import export_mlx_to_gguf, gguf_export_support
from macllm_app.core.errors import UserError
from macllm_app.core.formats.gguf_reader import read_gguf_header
from tests.support.convert_models import (
    CHAT,
    TRICKY_TEXTS,
    agreement,
    llama,
    llama_greedy,
    llama_logits,
    requantize,
)

pytestmark = [pytest.mark.mlx, pytest.mark.llamacpp, pytest.mark.slow]


@pytest.fixture(scope="module")
def exported(converted_default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    seen: list[float] = []
    dest = tmp_path_factory.mktemp("exported") / "smollm2-f16.gguf"
    assert export_mlx_to_gguf(converted_default_model, dest, lambda f, _m: seen.append(f)) == dest
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    return dest


def test_export_is_a_valid_f16_llama_gguf(exported: Path, default_model: Path) -> None:
    header = read_gguf_header(exported)
    original = read_gguf_header(default_model)
    assert header.kv["general.architecture"] == "llama"
    assert header.kv["general.file_type"] == 1
    assert {t.type_name for t in header.tensors} == {"F16", "F32"}
    assert {t.name for t in header.tensors} == {t.name for t in original.tensors}
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.chat_template",
                "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token",
                "llama.context_length", "llama.attention.head_count_kv", "llama.rope.freq_base"):
        assert header.kv[key] == original.kv[key], key
    assert not list(exported.parent.glob(".*partial*"))


def test_export_runs_in_llama_cpp_like_the_original(exported: Path, default_model: Path,
                                                    tmp_path: Path) -> None:
    ours = llama(exported)
    original = llama(default_model, vocab_only=True)
    for text in TRICKY_TEXTS:
        assert ours.tokenize(text.encode(), add_bos=False, special=True) == \
            original.tokenize(text.encode(), add_bos=False, special=True), text
    reference = llama(requantize(default_model, tmp_path / "f16.gguf", "F16"),
                      logits_all=True)
    prompt = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in CHAT)
    ids = ours.tokenize(f"{prompt}<|im_start|>assistant\n".encode(), add_bos=False,
                        special=True)
    got = llama_greedy(ours, ids, 20)
    assert ours.detokenize(got).decode().strip()
    # The same weights up to float16 rounding, so the same logits along the same tokens
    # (compared with tolerances: kernels, and so near-ties, differ by CPU).
    seq = ids + got
    found = agreement(llama_logits(llama(exported, logits_all=True), seq, len(ids)),
                      llama_logits(reference, seq, len(ids)))
    assert found.max_abs < 0.1, found
    assert found.mean_kl < 1e-4, found
    assert found.worst_tie < 0.05, found


def _tiny_folder(path: Path, config: dict[str, Any], tokenizer: dict[str, Any]) -> Path:
    import mlx.core as mx

    path.mkdir()
    base = {"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1,
            "intermediate_size": 16, "num_attention_heads": 2, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-5, "vocab_size": 4, "max_position_embeddings": 64}
    (path / "config.json").write_text(json.dumps({**base, **config}))
    (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    mx.save_safetensors(str(path / "model.safetensors"),
                        {"model.embed_tokens.weight": mx.zeros((4, 8))}, metadata={"format": "mlx"})
    return path


def _byte_level(**model: Any) -> dict[str, Any]:
    return {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], **model},
            "normalizer": None, "decoder": {"type": "ByteLevel"},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}}


def test_support_says_why_a_folder_cannot_be_exported(converted_default_model: Path,
                                                      tmp_path: Path) -> None:
    assert gguf_export_support(converted_default_model) is None
    assert gguf_export_support(_tiny_folder(tmp_path / "ok", {}, _byte_level())) is None
    cases = {
        "qwen": ({"model_type": "qwen2"}, _byte_level(), "model type is 'qwen2'"),
        "bias": ({"attention_bias": True}, _byte_level(), "biases"),
        "yarn": ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, _byte_level(),
                 "rope scaling"),
        "spm": ({}, _byte_level(byte_fallback=True), "not byte-level BPE"),
        "meta": ({}, {**_byte_level(), "pre_tokenizer": {"type": "Metaspace"}}, "Metaspace"),
    }
    for name, (config, tokenizer, reason) in cases.items():
        got = gguf_export_support(_tiny_folder(tmp_path / name, config, tokenizer))
        assert got is not None and reason in got and "\n" not in got, (name, got)
    assert "not a folder" in (gguf_export_support(tmp_path / "missing") or "")


def test_export_refuses_without_writing(converted_default_model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "taken.gguf"
    dest.write_bytes(b"mine")
    with pytest.raises(UserError, match="already exists"):
        export_mlx_to_gguf(converted_default_model, dest)
    assert dest.read_bytes() == b"mine"
    folder = _tiny_folder(tmp_path / "qwen", {"model_type": "qwen2"}, _byte_level())
    with pytest.raises(UserError, match="cannot export to GGUF: its model type is 'qwen2'"):
        export_mlx_to_gguf(folder, tmp_path / "q.gguf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["macllm-home", "qwen", "taken.gguf"]


def test_llama3_rope_scaling_round_trip(default_model: Path, tmp_path: Path) -> None:
    """A GGUF with Llama 3.1-style `rope_freqs` converts to mlx-lm's `llama3` rope
    scaling (same logits as llama.cpp) and exports back to the same tensor."""
    import mlx.core as mx
    import mlx_lm
    import numpy as np

    from macllm_app.core.convert.gguf_to_mlx import convert_gguf_to_mlx
    from macllm_app.core.convert.rope import llama3_rope_factors

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    plain = requantize(default_model, tmp_path / "f16.gguf", "F16")
    arrays, meta = mx.load(str(plain), return_metadata=True)
    arrays["rope_freqs.weight"] = mx.array(llama3_rope_factors(64, 100000.0, scaling))
    meta["llama.context_length"] = mx.array(131072, dtype=mx.uint32)
    scaled = tmp_path / "scaled.gguf"
    mx.save_gguf(str(scaled), arrays, meta)

    folder = convert_gguf_to_mlx(scaled, tmp_path / "scaled-mlx")
    assert json.loads((folder / "config.json").read_text())["rope_scaling"] == scaling
    model, tokenizer = mlx_lm.load(str(folder))
    prompt = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in CHAT)
    ids = tokenizer.encode(prompt + "<|im_start|>assistant\nThe waves of the",
                           add_special_tokens=False)

    def llama_logits(path: Path) -> np.ndarray:
        llm = llama(path, logits_all=True)
        llm.eval(ids)
        return np.array(llm.scores[:len(ids)])

    theirs = llama_logits(scaled)
    assert np.abs(theirs - llama_logits(plain)).max() > 0.1  # the scaling matters here
    ours = np.array(model(mx.array([ids]))[0].astype(mx.float32))
    assert np.abs(ours - theirs).max() < 0.1

    exported = export_mlx_to_gguf(folder, tmp_path / "exported.gguf")
    back = mx.load(str(exported))["rope_freqs.weight"]
    assert mx.allclose(back, arrays["rope_freqs.weight"]).item()
    assert np.abs(llama_logits(exported) - theirs).max() < 0.01
