"""Plain functions behind `macllm models ...`: JSON-able data in, data out, UserError on failure.

Every function here is safe to call from the CLI, the GUI's tasks and tests;
none of them loads an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from macllm_app.core.engines.select import installed
from macllm_app.core.errors import UserError
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.library.catalogue import Catalogue, LibraryEntry
from macllm_app.core.library.importer import ImportMode
from macllm_app.core.library.importer import import_model as _import_model
from macllm_app.core.library.importer import import_models as _import_models
from macllm_app.core.types import StopCheck


def entry_dict(e: LibraryEntry) -> dict[str, Any]:
    meta = e.metadata
    return {
        "id": e.id, "name": e.name, "path": e.path, "format": e.format, "source": e.source,
        "size_bytes": e.size_bytes, "architecture": meta.get("architecture"),
        "quantization": meta.get("quantization"), "n_params": meta.get("n_params"),
        "context_length": meta.get("context_length"), "engines": installed(meta.get("engines", [])),
        "extra": e.extra,
    }


def inspect(path: str) -> dict[str, Any]:
    """Validate a GGUF file or MLX folder (no model load) and return its metadata."""
    return inspect_model(Path(path).expanduser()).to_dict()


def _mode(mode: str) -> ImportMode:
    if mode == "link":
        return "link"
    if mode == "copy":
        return "copy"
    raise UserError(f"Unknown import mode {mode!r} (use 'link' or 'copy').")


def import_model(path: str, mode: str = "link") -> dict[str, Any]:
    """Import one model (mode "link" records it in place, "copy" copies it into the
    models folder); raises ModelFileError / UserError with the reason."""
    return entry_dict(_import_model(Path(path), _mode(mode)))


def import_models(paths: list[str], mode: str = "link") -> list[dict[str, Any]]:
    """Import several models; each result is {"path", "id", ...} or {"path", "error"}."""
    out: list[dict[str, Any]] = []
    for r in _import_models([Path(p) for p in paths], _mode(mode)):
        out.append(entry_dict(r.entry) if r.entry else {"path": r.path, "error": r.error})
    return out


def list_models(scan_stores: bool = True) -> list[dict[str, Any]]:
    """Library entries; with scan_stores, first index the HF cache, LM Studio and Ollama."""
    if scan_stores:
        from macllm_app.core.library.stores import refresh_store_index

        refresh_store_index()
    return [entry_dict(e) for e in Catalogue().entries()]


def fit(model: str | None, n_ctx: int = 4096, engine: str = "llama.cpp") -> dict[str, Any]:
    """Will this model (a library id or path; None: the bundled one) fit at this context
    length? (estimate, verdict, recommended quant)."""
    from macllm_app.core.library.memory_records import estimate_for
    from macllm_app.core.library.model_choice import resolve_model

    return estimate_for(str(resolve_model(model)), n_ctx, engine).to_dict()


def search(query: str, fmt: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Search the Hub; fmt is "gguf", "mlx" or None. Sorted by downloads."""
    from macllm_app.core.library import hub

    return [r.to_dict() for r in hub.search_models(query, fmt, limit)]


def repo_files(repo_id: str, revision: str = "main") -> dict[str, Any]:
    """A Hub repo's files with sizes and quantization types."""
    from macllm_app.core.library import hub

    return hub.repo_view(repo_id, revision).to_dict()


def pull(repo_id: str, filename: str | None = None, revision: str = "main",
         progress: Callable[[dict[str, Any]], None] | None = None,
         should_stop: StopCheck | None = None) -> dict[str, Any]:
    """Download a GGUF file (or, without filename, an MLX repo) and add it to the library.

    `progress` gets {"file", "done", "total", "speed_bps", "eta_s"}; when
    `should_stop()` turns true the download pauses (its partial file is kept and
    a later pull resumes it) and `Cancelled` is raised.
    """
    from macllm_app.core.library.pull import pull_to_library

    return entry_dict(pull_to_library(repo_id, filename, revision, progress, should_stop))


def discard_pull(repo_id: str, filename: str) -> None:
    """Cancel a paused download for good: remove its partial file."""
    from macllm_app.core.library.download import Downloader
    from macllm_app.core.library.hub import check_repo_id
    from macllm_app.core.library.pull import hub_dir

    check_repo_id(repo_id)
    Downloader(repo_id, filename, hub_dir(repo_id) / filename).discard()


def hf_token_status() -> dict[str, Any]:
    """Whether a secure keychain exists and a Hub token is stored (never the token itself)."""
    from macllm_app.core.library.token import get_token, keychain_status

    status = keychain_status()
    return {"secure_keychain": status.secure, "backend": status.backend,
            "message": status.reason, "token_stored": bool(get_token())}


def set_hf_token(token: str) -> None:
    """Store the Hub token in the OS keychain; UserError when no secure keychain exists."""
    from macllm_app.core.library.token import set_token

    set_token(token)


def delete_hf_token() -> None:
    from macllm_app.core.library.token import delete_token

    delete_token()
