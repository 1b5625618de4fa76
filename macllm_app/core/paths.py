"""Where MacLLM keeps its data. `MACLLM_HOME` overrides everything."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "MacLLM"


def data_dir() -> Path:
    """The profile folder (chats, settings, models we own), created on demand."""
    override = os.environ.get("MACLLM_HOME")
    base = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, False))
    base.mkdir(parents=True, exist_ok=True)
    return base


def chats_db_path() -> Path:
    return data_dir() / "chats.sqlite3"


def settings_path() -> Path:
    return data_dir() / "settings.json"


def models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    path = data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
