"""What the library offers to convert, where results go, and cleanup after a killed job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from macllm_app.core.engines.select import installed_engines
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.library.conversions import (
    conversion_info,
    default_gguf_dest,
    default_mlx_dest,
    mlx_conversion_block,
    partial_cleanup,
)
from tests.support.gguf_writer import TinyGGUF
from tests.support.mlx_fixtures import make_mlx_folder

needs_mlx = pytest.mark.skipif("mlx" not in installed_engines(), reason="MLX is not installed")


@needs_mlx
def test_a_llama_gguf_in_types_mlx_reads_converts(tmp_path: Path) -> None:
    meta = inspect_model(TinyGGUF.llama(quant="Q8_0").write(tmp_path / "m.gguf"))
    info = conversion_info(meta)
    assert info["to_mlx"] is None
    assert info["to_gguf"] == "It is a GGUF file already."
    assert info["mlx_copy"] is None  # made on first use


@needs_mlx
def test_reasons_for_ggufs_mlx_cannot_run(tmp_path: Path) -> None:
    kquant = inspect_model(TinyGGUF.llama(quant="Q4_K", emb=256).write(tmp_path / "k.gguf"))
    assert mlx_conversion_block(kquant) == (
        "MLX cannot read its Q4_K tensors (it reads F16, F32, Q4_0, Q4_1, Q8_0).")
    qwen = inspect_model(TinyGGUF.llama(arch="qwen2").write(tmp_path / "q.gguf"))
    assert mlx_conversion_block(qwen) == (
        "MLX conversion supports llama models; this one is qwen2.")


@needs_mlx
def test_the_default_models_mlx_copy_is_reported_with_its_size(default_model: Path) -> None:
    from macllm_app.core.library.mlx_copies import mlx_copy_path

    meta = inspect_model(default_model)
    assert conversion_info(meta)["mlx_copy"] is None
    copy = mlx_copy_path(default_model)
    copy.mkdir(parents=True)
    (copy / "config.json").write_text("{}")
    (copy / "model.safetensors").write_bytes(b"\0" * 1000)
    info = conversion_info(meta)
    assert info["mlx_copy"] == str(copy)
    assert info["mlx_copy_bytes"] == 1002


@needs_mlx
def test_mlx_folders_say_why_they_cannot_be_exported(tmp_path: Path) -> None:
    folder = make_mlx_folder(tmp_path / "phi")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "phi3"}))
    info = conversion_info(inspect_model(folder))
    assert info["to_mlx"] == "It is an MLX folder already."
    assert info["to_gguf"] == ("Cannot export to GGUF: its model type is 'phi3' "
                               "(GGUF export supports llama models).")


def test_checking_an_mlx_folder_imports_no_engine(tmp_path: Path) -> None:
    folder = make_mlx_folder(tmp_path / "m")
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from macllm_app.core.library.listing import model_details\n"
            f"model_details({str(folder)!r}, 2048)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'mlx', 'mlx_lm', 'llama_cpp', 'transformers'}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_results_get_new_names_in_the_models_folder(tmp_path: Path, macllm_home: Path) -> None:
    models = macllm_home / "models"
    gguf = tmp_path / "Small.Q4_0.gguf"
    assert default_mlx_dest(gguf) == models / "Small.Q4_0-MLX"
    (models / "Small.Q4_0-MLX").mkdir()
    assert default_mlx_dest(gguf) == models / "Small.Q4_0-MLX-2"
    empty = tmp_path / "chosen"
    empty.mkdir()
    assert default_mlx_dest(gguf, empty) == empty  # an empty folder the user chose
    (empty / "other").write_text("x")
    assert default_mlx_dest(gguf, empty) == empty / "Small.Q4_0-MLX"
    folder = tmp_path / "tiny"
    assert default_gguf_dest(folder) == models / "tiny-F16.gguf"
    (models / "tiny-F16.gguf").write_text("")
    assert default_gguf_dest(folder) == models / "tiny-F16-2.gguf"


def test_cleanup_removes_only_what_the_job_left(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    dest = models / "model-MLX"
    older = models / ".model-MLX.old.partial"
    older.mkdir()
    cleanup = partial_cleanup(dest)
    (models / ".model-MLX.abc.partial").mkdir()
    (models / ".model-MLX.abc.partial" / "model.safetensors").write_text("half")
    (models / "keep.txt").write_text("user data")
    cleanup()
    assert sorted(p.name for p in models.iterdir()) == [".model-MLX.old.partial", "keep.txt"]
