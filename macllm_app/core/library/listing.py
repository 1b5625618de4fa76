"""What the library pane and `macllm models list` show: every model with a fit verdict.

The bundled default model is always listed (source "bundled"), whether or not
it was imported. Only files MacLLM itself put in its models folder (copies and
Hub downloads) can be deleted from here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from macllm_app.core import paths
from macllm_app.core.engines.select import installed
from macllm_app.core.errors import UserError
from macllm_app.core.formats.metadata import ModelMetadata
from macllm_app.core.hardware.fit import FitEstimate, estimate, shape_of
from macllm_app.core.library.catalogue import Catalogue, LibraryEntry
from macllm_app.core.library.mlx_copies import remove_mlx_copy

OWNED_SOURCES = frozenset({"copy", "hub"})
SOURCE_LABELS = {"copy": "ours", "link": "linked", "hub": "ours (Hub)", "bundled": "bundled",
                 "hf-cache": "HF cache", "lmstudio": "LM Studio", "ollama": "Ollama"}


def _engine(meta: ModelMetadata) -> str:
    return meta.engines[0] if meta.engines else "llama.cpp"


def fit_of(meta: ModelMetadata, n_ctx: int, engine: str | None = None) -> FitEstimate:
    return estimate(shape_of(meta), n_ctx, engine or _engine(meta))


def _row(entry_id: str, name: str, source: str, meta: ModelMetadata, n_ctx: int) -> dict[str, Any]:
    return {
        "id": entry_id, "name": name, "path": meta.path, "format": meta.format,
        "source": source, "source_label": SOURCE_LABELS.get(source, source),
        "owned": source in OWNED_SOURCES, "size_bytes": meta.size_bytes,
        "architecture": meta.architecture, "quantization": meta.quantization,
        "n_params": meta.n_params, "context_length": meta.context_length,
        "engines": installed(meta.engines), "fit": fit_of(meta, n_ctx).verdict,
    }


def _entry_row(e: LibraryEntry, n_ctx: int) -> dict[str, Any]:
    return _row(e.id, e.name, e.source, e.model_metadata(), n_ctx)


def bundled_row(n_ctx: int) -> dict[str, Any] | None:
    from macllm_app.core.default_model import DISPLAY_NAME, default_model_path
    from macllm_app.core.formats.inspect import inspect_model

    try:
        meta = inspect_model(default_model_path())
    except UserError:
        return None  # not installed: nothing to list
    return _row("default", DISPLAY_NAME, "bundled", meta, n_ctx)


def library_rows(n_ctx: int = 4096, scan_stores: bool = True) -> list[dict[str, Any]]:
    """The bundled model first (unless imported), then the catalogue, each with a fit verdict."""
    if scan_stores:
        from macllm_app.core.library.stores import refresh_store_index

        refresh_store_index()
    rows = [_entry_row(e, n_ctx) for e in Catalogue().entries()]
    bundled = bundled_row(n_ctx)
    if bundled is not None and all(r["path"] != bundled["path"] for r in rows):
        rows.insert(0, bundled)
    return rows


def model_details(path: str, n_ctx: int, engine: str | None = None) -> dict[str, Any]:
    """Full metadata (re-validated), the fit estimate, measured peaks, and which
    conversions apply (see `conversions.conversion_info`)."""
    from macllm_app.core.formats.inspect import inspect_model
    from macllm_app.core.library.conversions import conversion_info

    meta = inspect_model(Path(path))
    fit = fit_of(meta, n_ctx, engine)
    measured = [{"engine": m.engine, "n_ctx": m.n_ctx, "peak_bytes": m.peak_bytes,
                 "estimate_bytes": m.estimate_bytes, "error": m.error}
                for m in Catalogue().measurements(meta.path)]
    return {"metadata": meta.to_dict(), "fit": fit.to_dict(), "measured": measured,
            "conversion": conversion_info(meta)}


def delete_owned(path: str) -> str:
    """Delete a model MacLLM copied or downloaded, and forget it; returns its name."""
    cat = Catalogue()
    entry = cat.find_path(Path(path))
    if entry is None or entry.source not in OWNED_SOURCES:
        raise UserError("Only models MacLLM copied or downloaded can be deleted here.")
    target = Path(entry.path)
    root = paths.models_dir().resolve()
    if not target.resolve().is_relative_to(root):
        raise UserError(f"{target} is outside MacLLM's models folder; not deleting it.")
    try:
        if target.is_dir():
            shutil.rmtree(target)
        else:
            if target.is_file():
                remove_mlx_copy(target)  # the copy made for MLX goes with its source
            target.unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(f"Could not delete {target.name}: {exc.strerror or exc}") from exc
    cat.remove_where(lambda e: e.path != entry.path)
    return entry.name


def paused_downloads() -> list[dict[str, Any]]:
    """Hub downloads paused earlier (their partial files are kept), one per file to resume.

    `file` is the GGUF file name, or None for an MLX repo (resumed as a whole).
    """
    root = paths.models_dir() / "hub"
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    for state in sorted(root.glob("*/**/*.part.json")):
        folder = state.relative_to(root).parts[0]
        owner, _, name = folder.partition("__")
        name_in_repo = state.relative_to(root / folder).as_posix().removesuffix(".part.json")
        part = state.with_name(state.name.removesuffix(".json"))
        try:
            total = json.loads(state.read_text()).get("size")
            done = part.stat().st_size
        except (OSError, ValueError, AttributeError):
            continue
        gguf = name_in_repo.endswith(".gguf")
        key = (f"{owner}/{name}", name_in_repo if gguf else None)
        entry = found.setdefault(key, {"repo_id": key[0], "file": key[1], "done": 0, "total": 0})
        entry["done"] += done
        entry["total"] += int(total or 0)
    return list(found.values())
