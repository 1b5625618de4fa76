"""GGUF -> MLX on the real default model, checked against llama.cpp.

The converted folder must load with plain `mlx_lm.load`, tokenize exactly like
llama.cpp, and compute the same model: both engines' logits along the same tokens
(llama.cpp's greedy continuation) agree within tolerances that hold on every CPU
(see tests/support/convert_models.py). On an F16 copy that llama.cpp makes of the
default model the engines compute with the same weights in float: their logits
agree to a few hundredths. On the Q4_1 file llama.cpp quantizes activations to 8
bits inside its matrix products, which moves logits by up to ~1; there MLX's Q4_1
model must equal its F16 model, and stay close to llama.cpp in distribution, its
top choices differing only at near-ties.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from macllm_app.core.convert.gguf_to_mlx import convert_gguf_to_mlx
from macllm_app.core.errors import Cancelled, ModelFileError, UserError
from tests.support.convert_models import (
    CHAT,
    TRICKY_TEXTS,
    agreement,
    llama,
    llama_greedy,
    llama_logits,
    mlx_logits,
    requantize,
)
from tests.support.gguf_writer import TinyGGUF

pytestmark = [pytest.mark.mlx, pytest.mark.llamacpp, pytest.mark.slow]

GREEDY_TOKENS = 20


@pytest.fixture(scope="module")
def f16_gguf(f16_default_model: Path) -> Path:
    return f16_default_model


@pytest.fixture(scope="module")
def f16_folder(f16_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_gguf_to_mlx(f16_gguf, tmp_path_factory.mktemp("f16mlx") / "smollm2-f16")


@pytest.fixture(scope="module")
def mlx_model(converted_default_model: Path) -> tuple[Any, Any]:
    import mlx_lm

    return mlx_lm.load(str(converted_default_model))


def _prompt(tokenizer: Any) -> str:
    text: str = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    return text


def test_folder_is_a_standard_mlx_lm_llama(converted_default_model: Path) -> None:
    from macllm_app.core.formats.mlx_folder import validate_mlx_folder

    meta = validate_mlx_folder(converted_default_model)
    assert (meta.architecture, meta.n_layers, meta.vocab_size) == ("llama", 30, 49152)
    config = json.loads((converted_default_model / "config.json").read_text())
    assert config["rope_traditional"] is False and config["tie_word_embeddings"] is True
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (9, 3)
    assert config["rope_theta"] == 100000.0 and config["rms_norm_eps"] == 1e-5
    assert config["quantization"] == {"group_size": 32, "bits": 4,
                                      "model.embed_tokens": {"group_size": 32, "bits": 8}}
    tok_config = json.loads((converted_default_model / "tokenizer_config.json").read_text())
    assert tok_config["eos_token"] == "<|im_end|>" and tok_config["add_bos_token"] is False
    assert "<|im_start|>" in tok_config["chat_template"]
    gen = json.loads((converted_default_model / "generation_config.json").read_text())
    assert gen["eos_token_id"] == 2
    assert not list(converted_default_model.parent.glob(".*partial"))


def test_tokenizer_matches_llama_cpp(mlx_model: tuple[Any, Any], default_model: Path) -> None:
    _, tokenizer = mlx_model
    llm = llama(default_model, vocab_only=True)
    for text in (*TRICKY_TEXTS, _prompt(tokenizer)):
        ours = tokenizer.encode(text, add_special_tokens=False)
        theirs = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert ours == theirs, text
        assert tokenizer.decode(ours) == text


def test_the_f16_copy_computes_llama_cpps_logits(f16_folder: Path, f16_gguf: Path) -> None:
    import mlx_lm

    model, tokenizer = mlx_lm.load(str(f16_folder))
    ids = tokenizer.encode(_prompt(tokenizer), add_special_tokens=False)
    llm = llama(f16_gguf, logits_all=True)
    assert ids == llm.tokenize(_prompt(tokenizer).encode(), add_bos=False, special=True)
    seq = ids + llama_greedy(llm, ids, GREEDY_TOKENS)
    found = agreement(mlx_logits(model, seq, len(ids)), llama_logits(llm, seq, len(ids)))
    # measured: max_abs 0.035 on AVX-512, 0.025 on AVX2; KL ~3e-6; no top choice differs
    assert found.max_abs < 0.1, found
    assert found.mean_kl < 1e-4, found
    assert found.worst_tie < 0.05, found  # a differing top choice only at an exact tie


def test_q4_1_model_computes_the_same_function(mlx_model: tuple[Any, Any], f16_folder: Path,
                                               default_model: Path) -> None:
    import mlx_lm

    model, tokenizer = mlx_model
    ids = tokenizer.encode(_prompt(tokenizer), add_special_tokens=False)
    llm = llama(default_model, logits_all=True)
    seq = ids + llama_greedy(llm, ids, GREEDY_TOKENS)
    ours = mlx_logits(model, seq, len(ids))
    # Same weights (to float16 rounding) kept quantized or not: the same logits.
    f16_model, _ = mlx_lm.load(str(f16_folder))
    assert agreement(ours, mlx_logits(f16_model, seq, len(ids))).max_abs < 0.15
    # llama.cpp's 8-bit activations move its logits by up to ~1: the distributions stay
    # close, and a top choice differs only where MLX's top two are near-tied.
    # (measured on AVX-512: mean KL 0.003, top-1 90 %, ties 0.011 and 0.008)
    found = agreement(ours, llama_logits(llm, seq, len(ids)))
    assert found.max_abs < 2.0, found
    assert found.mean_kl < 0.05, found
    assert found.top1 >= 0.8, found
    assert found.worst_tie < 0.5, found


def test_reading_through_gguf_package_equals_mx_load(default_model: Path) -> None:
    import mlx.core as mx

    from macllm_app.core.convert import gguf_source

    header = gguf_source.open_llama_gguf(default_model)
    native = gguf_source._load_with_mlx(header)
    ours = gguf_source._load_with_gguf(header, lambda _f, _m: None, lambda: False)
    assert native.arrays.keys() == ours.arrays.keys() and native.bits == ours.bits
    for name, a in native.arrays.items():
        b = ours.arrays[name]
        assert (a.dtype, a.shape) == (b.dtype, b.shape) and mx.array_equal(a, b).item(), name
    assert native.meta == ours.meta


def test_k_quant_file_is_decoded(default_model: Path, tmp_path: Path) -> None:
    """Q4_K_M (Q4_K, Q5_0, Q6_K and Q8_0 tensors): mx.load cannot read it whole; the
    converter keeps Q8_0 quantized and decodes the rest exactly as llama.cpp does."""
    import mlx.core as mx
    import mlx_lm

    k_file = requantize(default_model, tmp_path / "k.gguf", "Q4_K_M")
    with pytest.raises(RuntimeError):
        mx.load(str(k_file))
    folder = convert_gguf_to_mlx(k_file, tmp_path / "k-mlx")
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"]["bits"] == 8
    assert config["quantization"]["model.layers.0.mlp.down_proj"] is False
    # llama.cpp's own decoding of the same file, as F16, converted the plain way.
    reference = convert_gguf_to_mlx(requantize(k_file, tmp_path / "k-f16.gguf", "F16"),
                                    tmp_path / "k-f16-mlx")
    ours, ref = mx.load(str(folder / "model.safetensors")), \
        mx.load(str(reference / "model.safetensors"))
    for name in ("model.layers.0.mlp.down_proj.weight", "model.layers.0.self_attn.q_proj.weight"):
        assert ours[name].dtype == mx.float16
        assert mx.array_equal(ours[name], ref[name]).item(), name
    model, tokenizer = mlx_lm.load(str(folder))
    ids = tokenizer.encode(_prompt(tokenizer), add_special_tokens=False)
    assert np.isfinite(mlx_logits(model, ids, 1)).all()


def _no_leftovers(parent: Path) -> None:
    assert not [p for p in parent.iterdir() if p.name.endswith(".partial")]


def test_non_llama_gguf_is_refused(tmp_path: Path) -> None:
    src = TinyGGUF.llama(arch="qwen2").write(tmp_path / "tiny-qwen2.gguf")
    dest = tmp_path / "out"
    with pytest.raises(ModelFileError, match=r"tiny-qwen2\.gguf: architecture 'qwen2'"):
        convert_gguf_to_mlx(src, dest)
    assert not dest.exists()
    _no_leftovers(tmp_path)


def test_truncated_gguf_is_refused(default_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "cut.gguf"
    with default_model.open("rb") as f:
        src.write_bytes(f.read(default_model.stat().st_size // 2))
    dest = tmp_path / "out"
    with pytest.raises(ModelFileError, match=r"cut\.gguf: .*past the end of the file"):
        convert_gguf_to_mlx(src, dest)
    assert not dest.exists()
    _no_leftovers(tmp_path)


def test_existing_destination_is_left_alone(default_model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        convert_gguf_to_mlx(default_model, dest)
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    (dest / "notes.txt").unlink()
    seen: list[float] = []
    # an empty folder is fine
    assert convert_gguf_to_mlx(default_model, dest, lambda f, _m: seen.append(f)) == dest
    assert (dest / "model.safetensors").is_file()
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_cancel_removes_the_partial_folder(default_model: Path, tmp_path: Path) -> None:
    seen: list[float] = []

    def progress(fraction: float, _message: str) -> None:
        seen.append(fraction)

    dest = tmp_path / "out"
    with pytest.raises(Cancelled):
        convert_gguf_to_mlx(default_model, dest, progress, should_stop=lambda: len(seen) > 50)
    assert not dest.exists()
    _no_leftovers(tmp_path)
    assert seen == sorted(seen) and 0.0 < seen[-1] < 1.0

