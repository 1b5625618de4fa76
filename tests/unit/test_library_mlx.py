"""MLX / Hugging Face folder validation: the good folder and the hostile ones."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from macllm_app.core.errors import ModelFileError
from macllm_app.core.formats.inspect import inspect_model
from tests.support.mlx_fixtures import make_mlx_folder, write_safetensors


def test_good_folder_metadata(tmp_path: Path) -> None:
    meta = inspect_model(make_mlx_folder(tmp_path / "m"))
    assert meta.format == "mlx" and meta.engines == ("mlx",)
    assert meta.architecture == "llama"
    assert meta.quantization == "4-bit (group 32)"
    assert meta.n_params == 32 * 64 + 64 + 64 * 64  # q_proj unpacked from 4-bit U32
    assert (meta.n_layers, meta.n_kv_heads, meta.head_dim, meta.context_length) == (2, 2, 16, 1024)
    assert meta.has_chat_template


def _refused(folder: Path, fragment: str) -> None:
    with pytest.raises(ModelFileError, match=fragment) as info:
        inspect_model(folder)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("modeling_llama.py", b"import os", "must not contain code"),
    ("pytorch_model.bin", b"\x80\x04", "pickle"),
    ("sub/weights.pt", b"\x80\x04", "pickle"),
    ("training_args.pkl", b"\x80\x04", "pickle"),
])
def test_code_and_pickle_refused(tmp_path: Path, name: str, content: bytes,
                                 fragment: str) -> None:
    folder = make_mlx_folder(tmp_path / "m")
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    _refused(folder, fragment)


@pytest.mark.parametrize(("file", "key"), [
    ("config.json", "auto_map"), ("tokenizer_config.json", "auto_map"),
    ("config.json", "model_file"),
])
def test_custom_code_keys_refused(tmp_path: Path, file: str, key: str) -> None:
    folder = make_mlx_folder(tmp_path / "m")
    data = json.loads((folder / file).read_text())
    data[key] = {"AutoModel": "modeling.Model"}
    (folder / file).write_text(json.dumps(data))
    _refused(folder, key)


def test_symlinks(tmp_path: Path) -> None:
    folder = make_mlx_folder(tmp_path / "m")
    secret = tmp_path / "outside.txt"
    secret.write_text("x")
    (folder / "extra.txt").symlink_to(secret)
    _refused(folder, "outside the model folder")
    (folder / "extra.txt").unlink()
    (folder / "inside.txt").symlink_to(folder / "config.json")
    assert inspect_model(folder).format == "mlx"


@pytest.mark.parametrize(("problem", "fragment"), [
    ("no_config", "no config.json"), ("bad_json", "not valid JSON"),
    ("no_model_type", "no model_type"), ("no_tokenizer", "no tokenizer"),
    ("no_weights", "no .safetensors"),
])
def test_incomplete_folders(tmp_path: Path, problem: str, fragment: str) -> None:
    folder = make_mlx_folder(tmp_path / "m")
    if problem == "no_config":
        (folder / "config.json").unlink()
    elif problem == "bad_json":
        (folder / "config.json").write_text("{nope")
    elif problem == "no_model_type":
        (folder / "config.json").write_text("{}")
    elif problem == "no_tokenizer":
        (folder / "tokenizer.json").unlink()
    else:
        (folder / "model.safetensors").unlink()
    _refused(folder, fragment)


def test_safetensors_headers(tmp_path: Path) -> None:
    folder = make_mlx_folder(tmp_path / "m", quantized=False)
    st = folder / "model.safetensors"
    good: dict[str, object] = {"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}
    cases = [
        ({"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 1 << 40]}}, "outside the file"),
        ({"a": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 8]}}, "unknown dtype"),
        ({"a": {"dtype": "F16", "shape": [-1], "data_offsets": [0, 8]}}, "invalid shape"),
        ({"a": {"dtype": "F16", "shape": [5], "data_offsets": [0, 8]}}, "needs 10"),
        ([1, 2], "not a JSON object"),
    ]
    write_safetensors(st, {}, good)
    with st.open("ab") as f:
        f.write(b"\0" * 8)
    assert inspect_model(folder).n_params == 4
    for header, fragment in cases:
        write_safetensors(st, {}, header)  # type: ignore[arg-type]
        with st.open("ab") as f:
            f.write(b"\0" * 16)
        _refused(folder, fragment)
    overlap: dict[str, object] = {
        "a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
        "b": {"dtype": "F16", "shape": [4], "data_offsets": [4, 12]},
    }
    write_safetensors(st, {}, overlap)
    with st.open("ab") as f:
        f.write(b"\0" * 12)
    _refused(folder, "does not start where the previous one ends")
    write_safetensors(st, {}, good)
    with st.open("ab") as f:
        f.write(b"\0" * 9)
    _refused(folder, "covers 8 bytes but the file holds 9")
    st.write_bytes(struct.pack("<Q", 200 << 20) + b"{}")
    _refused(folder, "limit")
    st.write_bytes(struct.pack("<Q", 1000) + b"{}")
    _refused(folder, "header claims 1000 bytes")
    st.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{}")
    _refused(folder, "not valid JSON")


def test_weights_saved_without_metadata_are_accepted(tmp_path: Path) -> None:
    """`mx.save_safetensors` without metadata writes `"__metadata__": null`."""
    import mlx.core as mx

    folder = make_mlx_folder(tmp_path / "m", quantized=False)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    mx.save_safetensors(str(folder / "model.safetensors"),
                        {"model.embed_tokens.weight": mx.zeros((32, 64), dtype=mx.float16)})
    raw = (folder / "model.safetensors").read_bytes()
    assert b'"__metadata__":null' in raw.replace(b" ", b"")
    meta = inspect_model(folder)
    assert meta.n_params == 32 * 64
