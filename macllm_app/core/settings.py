"""ONE declarative settings schema: every setting with its type, default and help.

Stored as JSON at `paths.settings_path()`, written to a temp file and renamed.
Reading never fails: a missing, corrupt or partly invalid file gives defaults
for whatever cannot be used, with a logged warning per problem. Files carry a
`schema_version`; `MIGRATIONS[n]` turns a version-n dict into version n+1.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from macllm_app.core import paths
from macllm_app.core.resources import default_system_prompt
from macllm_app.core.types import EngineName, SamplingParams

log = logging.getLogger("macllm.settings")

SCHEMA_VERSION = 1

Migration = Callable[[dict[str, Any]], dict[str, Any]]
#: `MIGRATIONS[n]` upgrades a settings dict from schema version n to n + 1.
MIGRATIONS: dict[int, Migration] = {}


class _Group(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="ignore")


class EngineSettings(_Group):
    model_path: str | None = Field(
        default=None, title="Default model",
        description="GGUF file or MLX folder loaded at start-up; empty = the bundled model.",
        json_schema_extra={"widget": "path"},
    )
    engine: EngineName = Field(
        default="llama.cpp", title="Engine", description="Which engine runs the default model.")
    n_ctx: int = Field(default=4096, ge=256, le=1_048_576, title="Context window (tokens)",
        description="Prompt plus reply must fit in this many tokens.")
    n_threads: int | None = Field(default=None, ge=1, le=512, title="CPU threads",
        description="Threads for generation; empty = automatic.")
    n_batch: int = Field(default=512, ge=1, le=65_536, title="Batch size",
        description="Prompt tokens processed per step.")
    n_gpu_layers: int = Field(default=-1, ge=-1, le=1024, title="GPU layers",
        description="Layers offloaded to the GPU; -1 = all, 0 = CPU only.",
                              json_schema_extra={"lowest": "All"})


_SAMPLING = SamplingParams()  # the engines' defaults are the settings' defaults


class SamplingSettings(_Group):
    temperature: float = Field(
        default=_SAMPLING.temperature, ge=0.0, le=5.0, title="Temperature",
        description="Higher is more random; 0 always picks the likeliest.")
    top_p: float = Field(
        default=_SAMPLING.top_p, ge=0.0, le=1.0, title="Top P",
        description="Sample from the likeliest tokens up to this total.")
    top_k: int = Field(
        default=_SAMPLING.top_k, ge=0, le=1000, title="Top K",
        description="Sample from the K likeliest tokens; 0 = no limit.")
    min_p: float = Field(
        default=_SAMPLING.min_p, ge=0.0, le=1.0, title="Min P",
        description="Drop tokens less likely than this fraction of the best one.")
    repeat_penalty: float = Field(
        default=_SAMPLING.repeat_penalty, ge=0.0, le=5.0, title="Repeat penalty",
        description="Discourages repeating recent tokens; 1 = off.")
    seed: int | None = Field(
        default=_SAMPLING.seed, ge=0, le=2**31 - 1, title="Seed",
        description="Fixed seed for reproducible replies; empty = random.")
    max_tokens: int = Field(
        default=_SAMPLING.max_tokens, ge=1, le=131_072, title="Max reply tokens",
        description="Longest reply, in tokens.")


class ChatSettings(_Group):
    system_prompt: str = Field(
        default_factory=default_system_prompt, title="Default system prompt",
        description="Used by new conversations; each conversation can change its own.",
        json_schema_extra={"widget": "multiline"},
    )


class ServerSettings(_Group):
    """The Server pane's last choices (its API key lives in the keychain, not here)."""

    host: str = Field(default="127.0.0.1", title="Address to listen on")
    port: int = Field(default=8080, ge=1, le=65535, title="Port")
    parallel: int = Field(default=4, ge=1, le=64, title="Requests decoded together")
    allowed_origins: list[str] = Field(default_factory=list,
                                       title="Browser origins allowed to call the API")


class UiSettings(_Group):
    """Window state the app remembers; not shown in Preferences."""

    window_geometry: str | None = Field(default=None, title="Window geometry (base64)")
    last_conversation_id: int | None = Field(default=None, title="Last open conversation")
    sidebar_pane: str = Field(default="chat", title="Selected sidebar pane")


class Settings(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    engine: EngineSettings = Field(default_factory=EngineSettings, title="Engine")
    sampling: SamplingSettings = Field(default_factory=SamplingSettings,
                                       title="Default sampling")
    chat: ChatSettings = Field(default_factory=ChatSettings, title="Chat")
    server: ServerSettings = Field(default_factory=ServerSettings, title="Server")
    ui: UiSettings = Field(default_factory=UiSettings, title="Window")


#: Groups shown in the Preferences dialog, in order.
PREFERENCE_GROUPS: tuple[str, ...] = ("engine", "sampling", "chat")


def _sanitize_group(name: str, cls: type[_Group], raw: object) -> _Group:
    """Keep each valid field; drop unknown or invalid ones with a warning."""
    if not isinstance(raw, dict):
        log.warning("Settings: %r is not a table; using defaults.", name)
        return cls()
    good: dict[str, Any] = {}
    for key, value in raw.items():
        field = cls.model_fields.get(key)
        if field is None:
            log.warning("Settings: unknown setting %s.%s ignored.", name, key)
            continue
        try:
            cls.__pydantic_validator__.validate_assignment(cls.model_construct(), key, value)
        except ValidationError as exc:
            reason = exc.errors()[0].get("msg", "invalid")
            log.warning("Settings: %s.%s = %r is invalid (%s); using the default.",
                        name, key, value, reason)
            continue
        good[key] = value
    return cls.model_validate(good)


def from_dict(data: object) -> Settings:
    """Build settings from parsed JSON, migrating and repairing as needed."""
    if not isinstance(data, dict):
        log.warning("Settings: the file does not hold a JSON object; using defaults.")
        return Settings()
    data = dict(data)
    version = data.pop("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version < 1:
        log.warning("Settings: bad schema_version %r; reading as version %d.",
                    version, SCHEMA_VERSION)
        version = SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        log.warning("Settings: written by a newer MacLLM (schema %d); keeping what this "
                    "version understands.", version)
    while version < SCHEMA_VERSION:
        migrate = MIGRATIONS.get(version)
        if migrate is None:
            log.warning("Settings: no migration from schema %d; using defaults.", version)
            return Settings()
        data = migrate(data)
        version += 1
    groups: dict[str, Any] = {}
    for key, value in data.items():
        field = Settings.model_fields.get(key)
        annotation = field.annotation if field is not None else None
        if not isinstance(annotation, type) or not issubclass(annotation, _Group):
            log.warning("Settings: unknown setting %r ignored.", key)
            continue
        groups[key] = _sanitize_group(key, annotation, value)
    return Settings(**groups)


def load(path: Path | None = None) -> Settings:
    """Read settings; never raises for a bad file."""
    path = path or paths.settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        log.warning("Settings: cannot read %s (%s); using defaults.", path, exc)
        return Settings()
    try:
        data = json.loads(text)
    except ValueError as exc:
        log.warning("Settings: %s is not valid JSON (%s); using defaults.", path, exc)
        return Settings()
    return from_dict(data)


def save(settings: Settings, path: Path | None = None) -> None:
    """Write settings atomically (temp file in the same folder, then rename)."""
    path = path or paths.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = settings.model_dump(mode="json")
    payload["schema_version"] = SCHEMA_VERSION
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
