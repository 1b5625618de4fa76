"""Importing models: link in place or copy (temp name + rename); several at once."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from macllm_app.core import paths
from macllm_app.core.errors import ModelFileError, UserError
from macllm_app.core.library import commands
from macllm_app.core.library.catalogue import Catalogue
from macllm_app.core.library.model_choice import resolve_model
from tests.support.gguf_writer import TinyGGUF
from tests.support.mlx_fixtures import make_mlx_folder


def test_link_and_copy(tmp_path: Path) -> None:
    src = TinyGGUF.llama().write(tmp_path / "Tiny-Q4_0.gguf")
    linked = commands.import_model(str(src), mode="link")
    assert linked["path"] == str(src) and linked["source"] == "link"
    assert linked["id"] == "tiny-q4_0"
    assert commands.import_model(str(src))["id"] == linked["id"]  # idempotent, stable id
    copied = commands.import_model(str(src), mode="copy")
    assert commands.import_model(str(src), mode="copy") == copied  # no second copy
    assert Path(copied["path"]).parent == paths.models_dir()
    assert Path(copied["path"]).read_bytes() == src.read_bytes()
    assert copied["id"] == "tiny-q4_0-2"
    assert not list(paths.models_dir().glob(".importing-*"))
    assert resolve_model("tiny-q4_0") == src
    folder = commands.import_model(str(make_mlx_folder(tmp_path / "mlx-model")), mode="copy")
    assert (Path(folder["path"]) / "config.json").is_file()


def test_invalid_files_refused_nothing_else_affected(tmp_path: Path) -> None:
    good = TinyGGUF.llama().write(tmp_path / "good.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 40)
    evil = make_mlx_folder(tmp_path / "evil")
    (evil / "model.py").write_text("import os")
    results = commands.import_models([str(good), str(bad), str(evil), str(tmp_path / "nope")],
                                     mode="copy")
    assert "id" in results[0]
    assert results[1]["error"].startswith("bad.gguf: unsupported GGUF version")
    assert "must not contain code" in results[2]["error"]
    assert "no such file" in results[3]["error"]
    assert [e.path for e in Catalogue().entries()] == [results[0]["path"]]
    assert sorted(p.name for p in paths.models_dir().iterdir()) == ["good.gguf"]
    with pytest.raises(ModelFileError):
        commands.import_model(str(bad))


def test_copy_checks_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = TinyGGUF.llama().write(tmp_path / "t.gguf")

    def tiny_disk(_path: Any) -> Any:
        return shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000)

    monkeypatch.setattr(shutil, "disk_usage", tiny_disk)
    with pytest.raises(UserError, match="Not enough disk space"):
        commands.import_model(str(src), mode="copy")
    assert Catalogue().entries() == []


def test_inspect_is_json_able(default_model: Path) -> None:
    import json

    info = commands.inspect(str(default_model))
    assert json.loads(json.dumps(info))["quantization"] == "Q4_1"


def test_memory_measurements_recorded(tmp_path: Path) -> None:
    cat = Catalogue()
    m = cat.record_measurement("/m.gguf", "llama.cpp", 2048, 200, 220)
    assert m.error == pytest.approx(0.1)
    assert cat.measurements("/m.gguf")[0].peak_bytes == 200
