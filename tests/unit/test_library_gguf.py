"""GGUF header validation and metadata (our own reader, cross-checked with gguf-py)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from macllm_app.core.errors import ModelFileError
from macllm_app.core.formats.ggml_types import FILE_TYPES, TENSOR_TYPES
from macllm_app.core.formats.gguf_reader import read_gguf_header
from macllm_app.core.formats.inspect import inspect_model
from tests.support.gguf_writer import T_STRING, T_UINT32, TinyGGUF, gguf_string, type_id


def test_default_model_metadata(default_model: Path) -> None:
    meta = inspect_model(default_model)
    assert meta.format == "gguf"
    assert meta.architecture == "llama"
    assert meta.quantization == "Q4_1"
    assert meta.tensor_types == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert meta.context_length == 8192
    assert meta.has_chat_template
    assert meta.size_bytes == default_model.stat().st_size
    assert meta.engines == ("llama.cpp", "mlx")
    assert (meta.n_layers, meta.embedding_length, meta.n_heads, meta.n_kv_heads) == (30, 576, 9, 3)
    assert meta.head_dim == 64
    assert 130e6 < meta.n_params < 140e6


def test_reader_agrees_with_gguf_package(default_model: Path) -> None:
    import gguf

    ours = read_gguf_header(default_model)
    theirs = gguf.GGUFReader(str(default_model))
    assert ours.data_offset == theirs.data_offset
    assert set(ours.kv) == {k for k in theirs.fields if not k.startswith("GGUF.")}
    for a, b in zip(ours.tensors, theirs.tensors, strict=True):
        assert a.name == b.name
        assert a.dims == tuple(int(d) for d in b.shape)
        assert a.type_name == b.tensor_type.name
        assert ours.data_offset + a.offset == b.data_offset
        assert a.nbytes == b.n_bytes


def test_type_tables_match_gguf_package() -> None:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    known_types = {q.value for q in GGMLQuantizationType}
    known_files = {f.value for f in LlamaFileType}
    for tid, t in TENSOR_TYPES.items():
        if tid not in known_types:
            assert t.name == "Q2_0"  # newer than gguf-py; its layout is checked by quantizing
            continue
        q = GGMLQuantizationType(tid)
        assert (q.name, *GGML_QUANT_SIZES[q]) == (t.name, t.block_size, t.type_size)
    for fid, name in FILE_TYPES.items():
        if fid not in known_files:
            assert name == "Q2_0"
            continue
        assert LlamaFileType(fid).name.removeprefix("MOSTLY_").removeprefix("ALL_") == name


def test_tiny_model_is_valid(tmp_path: Path) -> None:
    path = TinyGGUF.llama(quant="Q8_0").write(tmp_path / "tiny.gguf")
    meta = inspect_model(path)
    assert meta.quantization == "Q8_0" and meta.engines == ("llama.cpp", "mlx")
    k_quant = TinyGGUF.llama(emb=256, quant="Q4_K").write(tmp_path / "k.gguf")
    assert inspect_model(k_quant).engines == ("llama.cpp",)
    assert inspect_model(k_quant).quantization == "Q4_K_M"


def _header_file(tmp_path: Path, body: bytes, size: int | None = None) -> Path:
    path = tmp_path / "bad.gguf"
    with path.open("wb") as f:
        f.write(body)
        if size:
            f.truncate(size)
    return path


def _expect(path: Path, fragment: str) -> str:
    with pytest.raises(ModelFileError) as info:
        inspect_model(path)
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg and msg.startswith(path.name)
    return msg


def test_hundred_gigabyte_claims_fail_instantly(tmp_path: Path) -> None:
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    claims = [
        head + struct.pack("<Q", 100 << 30) + b"k",  # key length
        head + gguf_string("k") + struct.pack("<IQ", T_STRING, 100 << 30),  # string value
        head + gguf_string("k") + struct.pack("<IIQ", 9, T_UINT32, 100 << 30),  # array
        b"GGUF" + struct.pack("<IQQ", 3, 100 << 30, 0),  # tensor count
        b"GGUF" + struct.pack("<IQQ", 3, 0, 2**64 - 1),  # kv count
    ]
    for body in claims:
        start = time.perf_counter()
        _expect(_header_file(tmp_path, body + b"\0" * 64), "")
        assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda m: setattr(m, "version", 1), "unsupported GGUF version 1"),
    (lambda m: setattr(m, "alignment", 48), "not a power of two"),
    (lambda m: m.tensors.append(("t", (64, 0), 0)), "zero dimension"),
    (lambda m: m.tensors.append(("t", (1, 1, 1, 1, 1), 0)), "5 dimensions"),
    (lambda m: m.tensors.append(("t", (64,), 4)), "unknown type 4"),
    (lambda m: m.tensors.append(("t", (33,), type_id("Q4_0"))), "block size"),
    (lambda m: m.tensors.append(("output_norm.weight", (64,), 0)), "duplicate tensor name"),
    (lambda m: m.kv.append(("", T_UINT32, 1)), "empty metadata key"),
    (lambda m: m.kv.append(("general.name", T_STRING, "x")), "duplicate metadata key"),
    (lambda m: m.kv.append(("k", 13, b"\0" * 4)), "unknown value type 13"),
    (lambda m: m.kv.append(("k", 9, struct.pack("<IQ", 9, 0))), "array of arrays"),
    (lambda m: m.offset_override.update({"output_norm.weight": 8}), "offset 8, expected 160"),
    (lambda m: m.kv.__setitem__(9, ("tokenizer.ggml.tokens", 9, (T_STRING, ("a",) * 70))),
     "69 duplicate entries"),
    (lambda m: m.kv.__setitem__(9, ("tokenizer.ggml.tokens", 9, (T_STRING, ("a", "b", "a")))),
     "1 duplicate entries"),
    (lambda m: m.offset_override.update({"output_norm.weight": 0}), "at data offset 0, expected"),
    (lambda m: m.kv.append(("general.alignment", 10, 64)), "must be a uint32"),
    (lambda m: m.offset_override.update({"output_norm.weight": 1 << 40}), "expected 160"),
])
def test_structural_problems(
    tmp_path: Path, mutate: Callable[[TinyGGUF], None], fragment: str
) -> None:
    model = TinyGGUF.llama()
    mutate(model)
    header, data = model.header_and_layout()
    _expect(_header_file(tmp_path, header, len(header) + data), fragment)


def test_data_section_cut_short(tmp_path: Path) -> None:
    header, data = TinyGGUF.llama().header_and_layout()
    _expect(_header_file(tmp_path, header, len(header) + data - 1), "past the end")


def test_truncated_and_not_gguf(tmp_path: Path) -> None:
    header, _ = TinyGGUF.llama().header_and_layout()
    _expect(_header_file(tmp_path, header[:-40]), "file ends inside")
    _expect(_header_file(tmp_path, b"GGML" + header[4:]), "not a GGUF file")
    _expect(_header_file(tmp_path, b"GG"), "not a GGUF file")
    with pytest.raises(ModelFileError, match="no such file"):
        inspect_model(tmp_path / "missing.gguf")


def test_remembered_vocabulary_is_checked_by_content(tmp_path: Path) -> None:
    tokens = tuple(f"t{i:05d}" for i in range(2000))
    model = TinyGGUF.llama()
    model.kv[9] = ("tokenizer.ggml.tokens", 9, (T_STRING, tokens))
    path = model.write(tmp_path / "vocab.gguf")
    assert inspect_model(path).vocab_size == 2000
    assert inspect_model(path).vocab_size == 2000  # second time: from the digest memo
    # same count, same first bytes, same length: only the digest tells them apart
    model.kv[9] = ("tokenizer.ggml.tokens", 9, (T_STRING, (*tokens[:-1], tokens[0])))
    _expect(model.write(tmp_path / "dup.gguf"), "1 duplicate entries")
