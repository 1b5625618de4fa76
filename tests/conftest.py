"""Shared fixtures: every test gets its own MACLLM_HOME; the default model is real."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def macllm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "macllm-home"
    home.mkdir()
    monkeypatch.setenv("MACLLM_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def default_model() -> Path:
    from macllm_app.core.default_model import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def llama_host(default_model: Path) -> Iterator[object]:
    """One engine host with the default model loaded, shared by a test session."""
    from macllm_app.core.engines.host import EngineHost
    from macllm_app.core.types import LoadConfig

    host = EngineHost()
    host.load(LoadConfig(model_path=str(default_model), n_ctx=2048, n_threads=2))
    yield host
    host.shutdown()


@pytest.fixture(scope="session")
def converted_default_model(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model converted GGUF -> MLX once per session (a plain mlx-lm folder)."""
    from macllm_app.core.convert.gguf_to_mlx import convert_gguf_to_mlx

    folder = tmp_path_factory.mktemp("converted") / "SmolLM2-135M-Instruct-mlx"
    return convert_gguf_to_mlx(default_model, folder)


@pytest.fixture(scope="session")
def f16_default_model(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model rewritten by llama.cpp's own quantizer as F16, once per session."""
    from tests.support.convert_models import requantize

    return requantize(default_model, tmp_path_factory.mktemp("f16") / "smollm2-f16.gguf", "F16")
