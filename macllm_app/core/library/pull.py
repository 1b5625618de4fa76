"""`macllm models pull`: download a GGUF file or an MLX repo into the library."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from macllm_app.core import paths
from macllm_app.core.errors import ModelFileError, UserError
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.formats.mlx_folder import CODE_SUFFIXES, PICKLE_SUFFIXES
from macllm_app.core.library.catalogue import Catalogue, LibraryEntry
from macllm_app.core.library.download import (
    FREE_MARGIN,
    Downloader,
    DownloadError,
    DownloadProgress,
    safe_relative_path,
)
from macllm_app.core.library.hub import HubFile, RepoView, check_repo_id, repo_view
from macllm_app.core.types import StopCheck

#: Files an MLX repo needs; everything else (README, images, code, pickles) is skipped.
MLX_SUFFIXES = (".json", ".safetensors", ".model", ".jinja", ".txt", ".tiktoken")


def hub_dir(repo_id: str) -> Path:
    return paths.models_dir() / "hub" / repo_id.replace("/", "__")


def _pick_files(view: RepoView, filename: str | None) -> list[HubFile]:
    for f in view.files:
        safe_relative_path(f.name)  # a hostile listing refuses the whole pull
    if filename is not None:
        match = [f for f in view.files if f.name == filename]
        if not match:
            raise UserError(f"{view.id} has no file {filename!r}.")
        if not match[0].is_gguf:
            raise UserError(f"{filename} is not a GGUF file; pull the repo without --file "
                            "for MLX models.")
        return match
    ggufs = view.gguf_files
    if len(ggufs) == 1:
        return ggufs
    if ggufs:
        names = ", ".join(f.name for f in ggufs[:8])
        raise UserError(f"{view.id} has several GGUF files; choose one with --file ({names}).")
    if view.is_mlx:
        return [f for f in view.files if f.name.endswith(MLX_SUFFIXES)
                and Path(f.name).suffix not in CODE_SUFFIXES | PICKLE_SUFFIXES
                and f.name != "README.md"]
    raise UserError(f"{view.id} has no GGUF file and is not an MLX model.")


def pull_to_library(repo_id: str, filename: str | None = None, revision: str = "main",
                    progress: Callable[[dict[str, Any]], None] | None = None,
                    should_stop: StopCheck | None = None) -> LibraryEntry:
    check_repo_id(repo_id)
    view = repo_view(repo_id, revision)
    files = _pick_files(view, filename)
    root = hub_dir(repo_id)
    root.mkdir(parents=True, exist_ok=True)
    need = sum(f.size or 0 for f in files if not (root / f.name).exists())
    free = shutil.disk_usage(root).free
    if need + FREE_MARGIN > free:
        raise DownloadError(f"Not enough disk space for {repo_id}: needs {need >> 20} MB, "
                            f"{free >> 20} MB free.")

    def report(p: DownloadProgress) -> None:
        if progress is not None:
            progress(p.to_dict())

    for f in files:
        dest = root / safe_relative_path(f.name)
        Downloader(repo_id, f.name, dest, revision=view.commit or revision, sha256=f.sha256,
                   git_oid=f.git_oid, on_progress=report, should_stop=should_stop).run()
    target = root / files[0].name if filename or view.gguf_files else root
    try:
        meta = inspect_model(target)
    except ModelFileError:
        if target.is_file():
            target.unlink()
        raise
    extra = {"repo_id": repo_id, "revision": view.commit or revision}
    name = f"{repo_id}/{files[0].name}" if target.is_file() else repo_id
    return Catalogue().add(meta, target, "hub", extra=extra, name=name)
