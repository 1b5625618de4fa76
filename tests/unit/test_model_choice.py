"""One model resolution for the CLI and the GUI: the bundled model, a library id, a path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from macllm_app.core.errors import UserError
from macllm_app.core.library import commands
from macllm_app.core.library.model_choice import load_config_for, resolve_model
from macllm_app.core.settings import EngineSettings
from tests.support.gguf_writer import TinyGGUF
from tests.support.mlx_fixtures import make_mlx_folder


def test_nothing_or_default_means_the_bundled_model(default_model: Path) -> None:
    assert resolve_model(None) == default_model
    assert resolve_model("default") == default_model


def test_a_library_id_comes_before_a_path_of_the_same_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = TinyGGUF.llama().write(tmp_path / "Tiny-Q4_0.gguf")
    entry = commands.import_model(str(model))
    decoy = tmp_path / "cwd" / entry["id"]
    decoy.mkdir(parents=True)  # a folder named like the id, in the working directory
    monkeypatch.chdir(decoy.parent)
    assert resolve_model(entry["id"]) == model
    assert resolve_model(str(model)) == model  # a path that exists, not in the library
    other = TinyGGUF.llama().write(tmp_path / "elsewhere.gguf")
    assert resolve_model(os.path.relpath(other)) == other


def test_an_unknown_model_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^No model with id or path 'nope' \(see `macllm"):
        resolve_model("nope")


def test_load_configs_follow_the_settings_and_the_models_format(
        tmp_path: Path, default_model: Path) -> None:
    group = EngineSettings(n_ctx=2048, n_threads=3, engine="mlx")
    default = load_config_for(group)
    assert (default.model_path, default.engine) == (str(default_model), "mlx")
    assert (default.n_ctx, default.n_threads) == (2048, 3)
    folder = make_mlx_folder(tmp_path / "tiny-mlx")
    assert load_config_for(group, str(folder)).engine == "mlx"
    gguf = TinyGGUF.llama().write(tmp_path / "t.gguf")
    assert load_config_for(group, str(gguf)).engine == "llama.cpp"
    assert load_config_for(group, str(gguf), "mlx").engine == "mlx"
    group.model_path = str(gguf)
    assert load_config_for(group).model_path == str(gguf)
