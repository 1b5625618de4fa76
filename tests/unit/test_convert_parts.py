"""Conversion building blocks on small, hand-made data: q/k row order, GGUF block
repacking, mlx-lm's quantization entry, pre-tokenizer mapping, staging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from macllm_app.core.convert import gguf_quants
from macllm_app.core.convert.gguf_tokenizer import PRE_TOKENIZERS, build_tokenizer
from macllm_app.core.convert.gguf_vocab import VocabError, pre_tokenizer_name
from macllm_app.core.convert.llama_weights import quantization_config, unpermute_rows
from macllm_app.core.convert.staging import staged_file, staged_folder
from macllm_app.core.errors import ModelFileError, UserError

pytestmark = pytest.mark.mlx


@pytest.mark.parametrize(("n_head", "rows", "cols"), [(9, 576, 72), (3, 192, 18), (4, 64, 1)])
def test_unpermute_inverts_mlx_lm_permute(n_head: int, rows: int, cols: int) -> None:
    import mlx.core as mx
    from mlx_lm.gguf import permute_weights

    hf = mx.array(np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32))
    gguf_order = permute_weights(hf, n_head)
    assert not mx.array_equal(gguf_order, hf).item()
    assert mx.array_equal(unpermute_rows(gguf_order, n_head), hf).item()


def _blocks(type_name: str, rows: int, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Random GGUF blocks and the values they encode (ggml's reference formulas)."""
    rng = np.random.default_rng(1)
    d = rng.uniform(0.001, 0.1, (rows, n_blocks, 1)).astype(np.float16)
    if type_name == "Q8_0":
        q = rng.integers(-128, 128, (rows, n_blocks, 32)).astype(np.int8)
        raw = np.concatenate([d.view(np.uint8), q.view(np.uint8)], axis=-1)
        return raw.reshape(rows, -1), (d.astype(np.float32) * q).reshape(rows, -1)
    q = rng.integers(0, 16, (rows, n_blocks, 32)).astype(np.uint8)
    packed = q[..., :16] | (q[..., 16:] << 4)
    if type_name == "Q4_0":
        raw = np.concatenate([d.view(np.uint8), packed], axis=-1)
        values = d.astype(np.float32) * (q.astype(np.float32) - 8)
    else:
        m = rng.uniform(-0.5, 0.5, (rows, n_blocks, 1)).astype(np.float16)
        raw = np.concatenate([d.view(np.uint8), m.view(np.uint8), packed], axis=-1)
        values = d.astype(np.float32) * q + m.astype(np.float32)
    return raw.reshape(rows, -1), values.reshape(rows, -1)


@pytest.mark.parametrize("type_name", ["Q4_0", "Q4_1", "Q8_0"])
def test_repacked_blocks_dequantize_to_the_gguf_values(type_name: str) -> None:
    import mlx.core as mx

    raw, expected = _blocks(type_name, rows=8, n_blocks=3)
    weight, scales, biases = gguf_quants.repack(raw, type_name)
    bits = gguf_quants.REPACKED_BITS[type_name]
    assert weight.dtype == np.uint32 and weight.shape == (8, 96 * bits // 32)
    # float32 scales: MLX then dequantizes without float16 rounding, so the packing is
    # checked exactly
    got = mx.dequantize(mx.array(weight), mx.array(scales).astype(mx.float32),
                        mx.array(biases).astype(mx.float32), group_size=32, bits=bits)
    np.testing.assert_allclose(np.array(got), expected, rtol=1e-6, atol=1e-7)


def test_undecodable_type_is_a_clear_error() -> None:
    with pytest.raises(ModelFileError, match=r"m\.gguf: tensor 'blk\.0\.attn_q\.weight' has "
                                             r"type Q8_1"):
        gguf_quants.dequantize(np.zeros((1, 40), np.uint8), "Q8_1", "blk.0.attn_q.weight",
                               "m.gguf")


def test_quantization_entry_for_mlx_lm() -> None:
    bits: dict[str, int | None] = {
        "model.embed_tokens": 8, "model.layers.0.self_attn.q_proj": 4,
        "model.layers.0.mlp.down_proj": None, "model.layers.0.mlp.up_proj": 4,
        "model.norm": None, "model.layers.0.input_layernorm": None,
    }
    assert quantization_config(bits) == {
        "group_size": 32, "bits": 4,
        "model.embed_tokens": {"group_size": 32, "bits": 8},
        "model.layers.0.mlp.down_proj": False,
    }
    assert quantization_config({"model.embed_tokens": None, "model.norm": None}) is None


def _vocab_meta(pre: str) -> dict[str, Any]:
    tokens = ["<s>", "a", "b", "ab", "Ġ", "Ġa"]
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre,
            "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": ["a b", "Ġ a"],
            "tokenizer.ggml.token_type": [3, 1, 1, 1, 1, 1],
            "tokenizer.ggml.bos_token_id": 0}


@pytest.mark.parametrize("pre", sorted(PRE_TOKENIZERS))
def test_pre_tokenizer_survives_a_round_trip(pre: str) -> None:
    data = json.loads(build_tokenizer(_vocab_meta(pre), "t.gguf").to_str())
    name = pre_tokenizer_name(data)
    assert PRE_TOKENIZERS[name] == PRE_TOKENIZERS[pre]


def _hf(pre_tokenizer: dict[str, Any], ignore_merges: bool = False) -> dict[str, Any]:
    return {"model": {"type": "BPE", "ignore_merges": ignore_merges}, "normalizer": None,
            "decoder": {"type": "ByteLevel"}, "pre_tokenizer": pre_tokenizer}


def test_hugging_face_pre_tokenizers_are_recognised() -> None:
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert pre_tokenizer_name(_hf(byte_level)) == "gpt-2"
    smollm = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, byte_level]}
    assert pre_tokenizer_name(_hf(smollm)) == "smollm"
    llama3 = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "behavior": "Isolated", "invert": False, "pattern": {"Regex": (
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}"
            r"\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")}},
        {**byte_level, "use_regex": False}]}
    assert pre_tokenizer_name(_hf(llama3, ignore_merges=True)) == "llama-bpe"
    with pytest.raises(VocabError, match="pre-tokenizer 'Metaspace'"):
        pre_tokenizer_name(_hf({"type": "Metaspace", "replacement": "▁"}))
    spm = _hf(byte_level)
    spm["model"]["byte_fallback"] = True
    with pytest.raises(VocabError, match="not byte-level BPE"):
        pre_tokenizer_name(spm)


def test_staged_folder_cleans_up_and_never_replaces(tmp_path: Path) -> None:
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    dest = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_folder(dest) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"), staged_folder(dest):
        pass
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_file_does_not_clobber_a_file_that_appears(tmp_path: Path) -> None:
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    dest = tmp_path / "m.gguf"
    with pytest.raises(UserError, match="already exists"), staged_file(dest) as tmp:
        tmp.write_bytes(b"new")
        dest.write_bytes(b"someone else's")
    assert dest.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]


@pytest.mark.parametrize(("head_dim", "theta", "factor"), [(128, 500000.0, 8.0),
                                                          (64, 500000.0, 32.0)])
def test_llama3_rope_scaling_is_recovered_from_rope_freqs(head_dim: int, theta: float,
                                                           factor: float) -> None:
    from macllm_app.core.convert.rope import llama3_rope_factors, llama3_scaling

    scaling = {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    factors = llama3_rope_factors(head_dim, theta, scaling)
    assert llama3_scaling(factors, head_dim, theta) == scaling
    assert llama3_scaling(np.ones(head_dim // 2), head_dim, theta) == {}
    assert llama3_scaling(factors[::-1], head_dim, theta) is None
    assert llama3_scaling(factors[:-1], head_dim, theta) is None
