"""Write a conversion's output under a temporary name next to its destination and
move it into place only when it is complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from macllm_app.core.errors import UserError


def check_dest_folder(dest: Path) -> None:
    """A destination folder must not exist, or be an empty folder."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise UserError(f"{dest} already exists and is not a folder.")
    if dest.is_dir() and any(dest.iterdir()):
        raise UserError(f"{dest} already exists and is not empty.")
    if not dest.parent.is_dir():
        raise UserError(f"The folder {dest.parent} does not exist.")


def check_dest_file(dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        raise UserError(f"{dest} already exists.")
    if not dest.parent.is_dir():
        raise UserError(f"The folder {dest.parent} does not exist.")


def staging_leftovers(dest: Path) -> set[Path]:
    """What `staged_folder`/`staged_file` have beside `dest` now: a conversion in
    progress, or what a killed one left behind."""
    return set(dest.parent.glob(f".{dest.name}.*"))


@contextlib.contextmanager
def staged_folder(dest: Path) -> Iterator[Path]:
    """Yield a fresh folder beside `dest`; on success rename it to `dest`, on any
    failure (or cancellation) remove it, leaving `dest` as it was."""
    check_dest_folder(dest)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    except OSError as exc:
        raise UserError(f"Cannot write in {dest.parent}: {exc.strerror or exc}") from None
    try:
        yield tmp
        check_dest_folder(dest)
        tmp.chmod(0o755)
        try:
            tmp.replace(dest)  # fails, keeping dest, unless dest is absent or empty
        except OSError as exc:
            raise UserError(f"Cannot create {dest}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_file(dest: Path, suffix: str = ".partial") -> Iterator[Path]:
    """Yield a temporary path (ending in `suffix`) beside `dest`; rename it to `dest`
    on success, remove it on failure."""
    check_dest_file(dest)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    except OSError as exc:
        raise UserError(f"Cannot write in {dest.parent}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        check_dest_file(dest)
        tmp.chmod(0o644)
        _move_no_clobber(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _move_no_clobber(tmp: Path, dest: Path) -> None:
    """Rename without ever replacing a file that appeared at `dest` meanwhile."""
    try:
        dest.hardlink_to(tmp)
    except FileExistsError:
        raise UserError(f"{dest} already exists.") from None
    except OSError:  # no hard links on this file system
        tmp.replace(dest)
        return
    tmp.unlink()
