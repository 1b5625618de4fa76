"""MLX copies of GGUF models, made by the converter on first use.

A GGUF model that MLX can run appears in the library once; the first time it
runs on MLX, the converter writes an mlx-lm folder under the profile's
models folder (`library.loading` runs `ensure_mlx_copy` as a job before the
engine host loads the copy). The copy's name carries the source's path, size
and modification time, so a changed source gets a new copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from pathlib import Path

from macllm_app.core.convert.staging import staging_leftovers
from macllm_app.core.paths import models_dir
from macllm_app.core.types import ProgressCallback, StopCheck

COPIES_FOLDER = "mlx-copies"
PROGRESS_PREFIX = "Making the MLX copy"  # starts every progress message of a conversion
COPY_TITLE = PROGRESS_PREFIX
ENSURE_COPY_TARGET = f"{__name__}:ensure_mlx_copy"
STALE_PARTIAL_S = 3600


def copies_dir() -> Path:
    return models_dir() / COPIES_FOLDER


def mlx_copy_path(gguf: Path) -> Path:
    """Where the MLX copy of `gguf` lives (whether or not it exists yet)."""
    source = gguf.expanduser().resolve()
    stat = source.stat()
    key = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return copies_dir() / f"{source.stem}-{key[:12]}"


def existing_mlx_copy(gguf: Path) -> Path | None:
    path = mlx_copy_path(gguf)
    return path if (path / "config.json").is_file() else None


def ensure_mlx_copy(gguf: Path | str, progress: ProgressCallback | None = None,
                    should_stop: StopCheck | None = None) -> Path:
    """The MLX copy of `gguf`, converting it first if there is none.

    Needs mlx: run it as a job (`ENSURE_COPY_TARGET`), not in the GUI process.
    """
    gguf = Path(gguf)
    found = existing_mlx_copy(gguf)
    if found is not None:
        return found
    from macllm_app.core.convert.gguf_to_mlx import convert_gguf_to_mlx

    dest = mlx_copy_path(gguf)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # an empty or half-made folder from an older run
        shutil.rmtree(dest)
    _remove_stale_partials(dest)
    report = progress or (lambda _f, _m: None)
    return convert_gguf_to_mlx(gguf, dest, should_stop=should_stop,
                               progress=lambda f, m: report(f, f"{PROGRESS_PREFIX}: {m}"))


def _remove_stale_partials(dest: Path) -> None:
    """Staging folders of conversions that were killed (a live one is younger)."""
    cutoff = time.time() - STALE_PARTIAL_S
    for partial in staging_leftovers(dest):
        with contextlib.suppress(OSError):
            if partial.stat().st_mtime < cutoff:
                shutil.rmtree(partial)


def remove_mlx_copy(gguf: Path) -> bool:
    """Delete the MLX copy of `gguf` if there is one (it can always be made again)."""
    found = existing_mlx_copy(gguf)
    if found is None:
        return False
    shutil.rmtree(found)
    return True
