"""Add models to the library: validate first, then copy (temp name + rename) or link in place."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from macllm_app.core import paths
from macllm_app.core.errors import ModelFileError, UserError
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.library.catalogue import Catalogue, LibraryEntry

ImportMode = Literal["link", "copy"]
#: Keep this much free after a copy, so the disk is never filled to the last byte.
FREE_MARGIN = 256 << 20


@dataclass(frozen=True, slots=True)
class ImportResult:
    path: str
    entry: LibraryEntry | None
    error: str | None


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _free_name(folder: Path, name: str, is_dir: bool) -> Path:
    stem, suffix = (name, "") if is_dir else (Path(name).stem, Path(name).suffix)
    target, n = folder / name, 2
    while target.exists():
        target, n = folder / f"{stem}-{n}{suffix}", n + 1
    return target


def _copy_in(src: Path) -> Path:
    dest_dir = paths.models_dir()
    need = _tree_size(src)
    free = shutil.disk_usage(dest_dir).free
    if need + FREE_MARGIN > free:
        raise UserError(f"Not enough disk space to copy {src.name}: needs {need >> 20} MB, "
                        f"{free >> 20} MB free.")
    tmp = dest_dir / f".importing-{uuid.uuid4().hex[:8]}-{src.name}"
    try:
        if src.is_dir():
            shutil.copytree(src, tmp, symlinks=False)
        else:
            shutil.copyfile(src, tmp)
        got = _tree_size(tmp)
        if got != need:
            raise UserError(f"Copy of {src.name} is incomplete ({got} of {need} bytes).")
        target = _free_name(dest_dir, src.name, src.is_dir())
        tmp.rename(target)
        return target
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def import_model(path: Path, mode: ImportMode = "link",
                 catalogue: Catalogue | None = None) -> LibraryEntry:
    """Validate a GGUF file or MLX folder, then add it to the library.

    Raises ModelFileError (invalid or unsafe model) or UserError (disk, I/O);
    nothing is written when validation fails.
    """
    if mode not in ("link", "copy"):
        raise UserError(f"Unknown import mode {mode!r} (use 'link' or 'copy').")
    src = Path(path).expanduser().absolute()
    meta = inspect_model(src)
    cat = catalogue or Catalogue()
    if mode == "link":
        return cat.add(meta, src, "link")
    for e in cat.entries():  # this file was copied in before and the copy is intact
        if (e.source == "copy" and e.extra.get("copied_from") == str(src)
                and e.size_bytes == meta.size_bytes and Path(e.path).exists()):
            return e
    try:
        target = _copy_in(src)
    except OSError as exc:
        raise UserError(f"Could not copy {src.name}: {exc.strerror or exc}") from exc
    copied = inspect_model(target)
    return cat.add(copied, target, "copy", extra={"copied_from": str(src)})


def import_models(paths_: Iterable[Path], mode: ImportMode = "link") -> list[ImportResult]:
    """Import several paths; each one succeeds or fails on its own."""
    results: list[ImportResult] = []
    cat = Catalogue()
    for p in paths_:
        try:
            results.append(ImportResult(str(p), import_model(p, mode, cat), None))
        except (ModelFileError, UserError) as exc:
            results.append(ImportResult(str(p), None, str(exc)))
    return results
