"""The settings schema: defaults, forgiving load, atomic save, migrations."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from macllm_app.core import paths
from macllm_app.core import settings as settings_mod
from macllm_app.core.settings import Settings
from macllm_app.core.types import SamplingParams


def test_missing_file_gives_defaults() -> None:
    loaded = settings_mod.load()
    assert loaded == Settings()
    assert loaded.engine.n_ctx == 4096 and loaded.engine.n_gpu_layers == -1
    assert loaded.engine.model_path is None


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    original = Settings()
    original.engine.n_threads = 3
    original.sampling.seed = 42
    original.ui.last_conversation_id = 7
    settings_mod.save(original)
    assert settings_mod.load() == original
    data = json.loads(paths.settings_path().read_text())
    assert data["schema_version"] == settings_mod.SCHEMA_VERSION
    assert not list(paths.data_dir().glob(".settings-*")), "no temp file left behind"


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", '"text"', "\x00\xff"])
def test_unreadable_content_gives_defaults(text: str, caplog: pytest.LogCaptureFixture) -> None:
    paths.settings_path().write_text(text, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="macllm.settings"):
        assert settings_mod.load() == Settings()
    assert caplog.records


def test_invalid_and_unknown_values_fall_back_one_by_one(
        caplog: pytest.LogCaptureFixture) -> None:
    data: dict[str, Any] = {
        "schema_version": 1,
        "engine": {"n_ctx": "lots", "n_threads": 6, "engine": "tensorflow", "colour": "red"},
        "sampling": {"temperature": 99, "top_k": 5, "seed": None},
        "chat": "not a table",
        "plugins": {},
    }
    paths.settings_path().write_text(json.dumps(data), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="macllm.settings"):
        loaded = settings_mod.load()
    assert loaded.engine.n_ctx == 4096 and loaded.engine.engine == "llama.cpp"
    assert loaded.engine.n_threads == 6
    assert loaded.sampling.temperature == 0.7 and loaded.sampling.top_k == 5
    assert loaded.chat == Settings().chat
    text = caplog.text
    for fragment in ("engine.n_ctx", "engine.colour", "sampling.temperature", "'chat'",
                     "'plugins'"):
        assert fragment in text


def test_migrations_run_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A future schema 3: v1 had a flat `context`, v2 renamed a group."""
    def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {"model": {"n_ctx": data.pop("context")}}

    def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
        return {"engine": data.pop("model")}

    monkeypatch.setattr(settings_mod, "SCHEMA_VERSION", 3)
    monkeypatch.setitem(settings_mod.MIGRATIONS, 1, v1_to_v2)
    monkeypatch.setitem(settings_mod.MIGRATIONS, 2, v2_to_v3)
    loaded = settings_mod.from_dict({"schema_version": 1, "context": 8192})
    assert loaded.engine.n_ctx == 8192


def test_version_without_migration_gives_defaults(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(settings_mod, "SCHEMA_VERSION", 2)
    with caplog.at_level(logging.WARNING, logger="macllm.settings"):
        loaded = settings_mod.from_dict({"schema_version": 1, "engine": {"n_ctx": 8192}})
    assert loaded == Settings()
    assert "no migration" in caplog.text


def test_the_sampling_defaults_are_the_engines_defaults() -> None:
    engines = SamplingParams()
    settings = Settings().sampling
    assert {name: getattr(engines, name) for name in type(settings).model_fields} == \
        settings.model_dump()


def test_every_field_has_a_title_and_help() -> None:
    for group in settings_mod.PREFERENCE_GROUPS:
        model = type(getattr(Settings(), group))
        for name, info in model.model_fields.items():
            assert info.title, name
            assert info.description, name
