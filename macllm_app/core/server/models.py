"""The models a request may name: the library's, by id or name, and nothing else.

A request's `model` is only ever compared with library ids and names; it is
never opened as a path (Ollama's CVE-2024-37032 was a model name used as one).
Ollama clients add a tag (`name:latest`), which is ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macllm_app.core import settings as settings_mod
from macllm_app.core.engines.select import default_engine_for
from macllm_app.core.library.listing import library_rows
from macllm_app.core.library.model_choice import DEFAULT_ID
from macllm_app.core.server.errors import ApiError
from macllm_app.core.types import EngineName, LoadConfig, engine_named

#: The library is read again after this long (it changes when the user imports).
ROWS_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class ServedModel:
    id: str
    name: str
    path: str
    engine: EngineName
    row: dict[str, Any]

    def load_config(self, n_ctx: int | None, n_threads: int | None = None) -> LoadConfig:
        """How the server loads it: the Preferences' engine settings, `n_ctx` per slot."""
        group = settings_mod.load().engine
        return LoadConfig(model_path=self.path, engine=self.engine, n_ctx=n_ctx or group.n_ctx,
                          n_threads=n_threads or group.n_threads, n_batch=group.n_batch,
                          n_gpu_layers=group.n_gpu_layers)


def _served(row: dict[str, Any]) -> ServedModel:
    engines = [e for e in (engine_named(x) for x in row.get("engines", ())) if e is not None]
    engine = engines[0] if engines else default_engine_for(Path(row["path"]))
    if row.get("format") == "gguf" and "llama.cpp" in engines:
        engine = "llama.cpp"
    return ServedModel(str(row["id"]), str(row["name"]), str(row["path"]), engine, row)


class ModelDirectory:
    """The library as the server sees it. A listing re-reads it every few seconds; a
    request finds its model in the rows read last (no request waits for the library to
    be read), and reads again only when the name is not there."""

    def __init__(self, default_ref: str | None = None) -> None:
        self._default_ref = default_ref
        self._rows: list[dict[str, Any]] = []
        self._read_at = -ROWS_TTL_S

    def models(self, fresh: bool = False, cached: bool = False) -> list[ServedModel]:
        now = time.monotonic()
        expired = now - self._read_at >= ROWS_TTL_S
        if fresh or (expired and not (cached and self._rows)):
            self._rows = library_rows(scan_stores=False)
            self._read_at = now
        return [_served(row) for row in self._rows]

    def default(self) -> ServedModel:
        models = self.models(cached=True)
        if self._default_ref:
            return self.resolve(self._default_ref)
        preferred = settings_mod.load().engine.model_path
        chosen = next((m for m in models if preferred and m.path == preferred), None)
        chosen = chosen or next((m for m in models if m.id == DEFAULT_ID), None)
        if chosen is None and models:
            chosen = models[0]
        if chosen is None:
            raise ApiError(404, "The library has no models; import one first.",
                           param="model", code="model_not_found")
        return chosen

    def resolve(self, ref: str | None) -> ServedModel:
        """The library model `ref` names (id, then name); none given: the default one.
        A name not found is looked up again in a freshly read library (just imported)."""
        if not ref:
            return self.default()
        found = _find(self.models(cached=True), ref) or _find(self.models(fresh=True), ref)
        if found is not None:
            return found
        raise ApiError(404, f"The model {ref!r} does not exist in this server's library "
                       "(GET /v1/models lists them).", param="model", code="model_not_found")


def _find(models: list[ServedModel], ref: str) -> ServedModel | None:
    candidates = [ref]
    if ref.endswith(":latest"):
        candidates.append(ref.removesuffix(":latest"))
    for wanted in candidates:
        folded = wanted.casefold()
        for found in (next((m for m in models if m.id == wanted), None),
                      next((m for m in models if m.name == wanted), None),
                      next((m for m in models if m.name.casefold() == folded), None)):
            if found is not None:
                return found
    return None
