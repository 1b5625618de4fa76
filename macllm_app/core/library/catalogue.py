"""The library catalogue: one JSON file in the data dir, written atomically.

Entries have stable ids (a slug of the model's name, suffixed on collision)
that `macllm chat --model ID` accepts. Measured peak memory after real loads
is kept in the same file, next to the entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from macllm_app.core import paths
from macllm_app.core.errors import UserError
from macllm_app.core.formats.metadata import ModelMetadata

Source = Literal["copy", "link", "hub", "hf-cache", "lmstudio", "ollama"]
STORE_SOURCES: frozenset[str] = frozenset({"hf-cache", "lmstudio", "ollama"})
SCHEMA_VERSION = 1
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LibraryEntry:
    id: str
    name: str
    path: str
    format: str
    source: Source
    size_bytes: int
    added_at: float
    metadata: dict[str, Any]
    extra: dict[str, str] = field(default_factory=dict)

    def model_metadata(self) -> ModelMetadata:
        return ModelMetadata.from_dict(self.metadata)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MemoryMeasurement:
    model_path: str
    engine: str
    n_ctx: int
    peak_bytes: int
    estimate_bytes: int
    measured_at: float

    @property
    def error(self) -> float:
        """Relative error of the estimate: (estimate - measured) / measured."""
        return (self.estimate_bytes - self.peak_bytes) / self.peak_bytes if self.peak_bytes else 0.0


def catalogue_path() -> Path:
    return paths.data_dir() / "library.json"


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-.")
    return slug[:80] or "model"


class Catalogue:
    """Read-modify-write access to library.json under a file lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or catalogue_path()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / (self.path.name + ".lock")).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": SCHEMA_VERSION, "entries": [], "measurements": []}
        except (OSError, ValueError) as exc:
            raise UserError(f"The model library file {self.path} is unreadable ({exc}).") from exc
        if not isinstance(data, dict):
            raise UserError(f"The model library file {self.path} is not a JSON object.")
        data.setdefault("entries", [])
        data.setdefault("measurements", [])
        return data

    def _save(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".library-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _update(self, change: Callable[[dict[str, Any]], T]) -> T:
        with self._locked():
            data = self._load()
            result = change(data)
            self._save(data)
            return result

    def entries(self) -> list[LibraryEntry]:
        return [LibraryEntry(**e) for e in self._load()["entries"]]

    def get(self, entry_id: str) -> LibraryEntry | None:
        return next((e for e in self.entries() if e.id == entry_id), None)

    def find_path(self, path: Path) -> LibraryEntry | None:
        key = str(path)
        return next((e for e in self.entries() if e.path == key), None)

    def add(self, meta: ModelMetadata, path: Path, source: Source,
            extra: dict[str, str] | None = None, name: str | None = None) -> LibraryEntry:
        """Add a model (or return the existing entry for the same path; its id never changes)."""

        def change(data: dict[str, Any]) -> LibraryEntry:
            for raw in data["entries"]:
                if raw["path"] == str(path):
                    raw.update(metadata=meta.to_dict(), size_bytes=meta.size_bytes)
                    if extra:
                        raw["extra"] = {**raw.get("extra", {}), **extra}
                    return LibraryEntry(**raw)
            taken = {e["id"] for e in data["entries"]}
            base = slugify(name or (path.stem if meta.format == "gguf" else path.name))
            entry_id, n = base, 2
            while entry_id in taken:
                entry_id, n = f"{base}-{n}", n + 1
            entry = LibraryEntry(
                id=entry_id, name=name or meta.name, path=str(path), format=meta.format,
                source=source, size_bytes=meta.size_bytes, added_at=time.time(),
                metadata=meta.to_dict(), extra=dict(extra or {}))
            data["entries"].append(entry.to_dict())
            return entry

        return self._update(change)

    def remove_where(self, keep: Callable[[LibraryEntry], bool]) -> list[LibraryEntry]:
        """Drop index entries for which keep() is False; return what was dropped."""

        def change(data: dict[str, Any]) -> list[LibraryEntry]:
            entries = [LibraryEntry(**e) for e in data["entries"]]
            data["entries"] = [e.to_dict() for e in entries if keep(e)]
            return [e for e in entries if not keep(e)]

        return self._update(change)

    def record_measurement(self, model_path: str, engine: str, n_ctx: int, peak_bytes: int,
                           estimate_bytes: int) -> MemoryMeasurement:
        m = MemoryMeasurement(model_path, engine, n_ctx, peak_bytes, estimate_bytes, time.time())
        self._update(lambda data: data["measurements"].append(asdict(m)))
        return m

    def measurements(self, model_path: str | None = None) -> list[MemoryMeasurement]:
        return [MemoryMeasurement(**m) for m in self._load()["measurements"]
                if model_path is None or m["model_path"] == model_path]
