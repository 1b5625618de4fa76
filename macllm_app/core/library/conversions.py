"""Library conversions: GGUF file -> MLX folder, MLX folder -> F16 GGUF, added to the library.

`convert_into_library` and `export_into_library` need mlx: run them in a job
process (`macllm_app.core.jobs`, targets `CONVERT_TARGET` / `EXPORT_TARGET`).
Everything else here only reads files and is safe in the GUI's task threads.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from macllm_app.core import paths
from macllm_app.core.convert.staging import staging_leftovers
from macllm_app.core.engines.select import installed_engines
from macllm_app.core.errors import ModelFileError, UserError
from macllm_app.core.formats.ggml_types import MLX_GGUF_TYPES
from macllm_app.core.formats.metadata import ModelMetadata
from macllm_app.core.library.catalogue import Catalogue, Source
from macllm_app.core.types import ProgressCallback, StopCheck

CONVERT_TARGET = f"{__name__}:convert_into_library"
EXPORT_TARGET = f"{__name__}:export_into_library"
CONVERT_TITLE = "Converting to MLX"
EXPORT_TITLE = "Exporting to GGUF"
#: Keep this much free after writing, so the disk is never filled to the last byte.
FREE_MARGIN = 256 << 20



# -- what applies to a model ----------------------------------------------------
def mlx_conversion_block(meta: ModelMetadata) -> str | None:
    """None when the GGUF model can be converted to MLX, else the reason, one line."""
    if meta.format != "gguf":
        return "It is an MLX folder already."
    if "mlx" not in installed_engines():
        return "MLX is not installed in this build."
    if meta.architecture != "llama":
        return f"MLX conversion supports llama models; this one is {meta.architecture}."
    unreadable = sorted(set(meta.tensor_types) - MLX_GGUF_TYPES)
    if unreadable:
        return (f"MLX cannot read its {', '.join(unreadable)} tensors "
                f"(it reads {', '.join(sorted(MLX_GGUF_TYPES))}).")
    if "mlx" not in meta.engines:
        return "MLX cannot run this model."
    return None


def gguf_export_block(meta: ModelMetadata) -> str | None:
    """None when the MLX folder can be exported to an F16 GGUF, else the reason."""
    if meta.format != "mlx":
        return "It is a GGUF file already."
    if "mlx" not in installed_engines():
        return "MLX is not installed in this build."
    from macllm_app.core.convert.mlx_to_gguf import gguf_export_support

    reason = gguf_export_support(Path(meta.path))
    return None if reason is None else f"Cannot export to GGUF: {reason}."


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def conversion_info(meta: ModelMetadata) -> dict[str, Any]:
    """What the library offers for this model: {"to_mlx", "to_gguf"} (None or a reason),
    and for a GGUF file its MLX copy for the MLX engine: {"mlx_copy", "mlx_copy_bytes"}."""
    info: dict[str, Any] = {"to_mlx": mlx_conversion_block(meta),
                            "to_gguf": gguf_export_block(meta),
                            "mlx_copy": None, "mlx_copy_bytes": None}
    if meta.format == "gguf" and info["to_mlx"] is None:
        from macllm_app.core.library.mlx_copies import existing_mlx_copy

        with contextlib.suppress(OSError):
            copy = existing_mlx_copy(Path(meta.path))
            if copy is not None:
                info["mlx_copy"], info["mlx_copy_bytes"] = str(copy), folder_size(copy)
    return info


# -- where results go -------------------------------------------------------------
def free_path(folder: Path, stem: str, suffix: str = "") -> Path:
    target, n = folder / f"{stem}{suffix}", 2
    while target.exists() or target.is_symlink():
        target, n = folder / f"{stem}-{n}{suffix}", n + 1
    return target


def default_mlx_dest(gguf: Path, folder: Path | None = None) -> Path:
    """A new folder named after the model in `folder` (default: the models folder).

    An empty `folder` chosen by the user is used itself.
    """
    if folder is not None and folder.is_dir() and not any(folder.iterdir()):
        return folder
    return free_path(folder or paths.models_dir(), f"{Path(gguf).stem}-MLX")


def default_gguf_dest(mlx_folder: Path, folder: Path | None = None) -> Path:
    """A new F16 GGUF file named after the model in `folder` (default: the models folder)."""
    return free_path(folder or paths.models_dir(), f"{Path(mlx_folder).name}-F16", ".gguf")


def partial_cleanup(dest: Path) -> Callable[[], None]:
    """A function removing the staging files a killed conversion left beside `dest`.

    Made before the job starts: anything named like `dest`'s staging that
    already existed is left alone.
    """
    before = staging_leftovers(dest)

    def cleanup() -> None:
        for path in staging_leftovers(dest) - before:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    return cleanup


# -- in the job process --------------------------------------------------------------
def check_space(folder: Path, need: int) -> None:
    """A one-line error unless `folder` has `need` bytes free (and a margin to spare)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # the conversion itself says what is wrong with the folder
    if need + FREE_MARGIN > free:
        raise UserError(f"Not enough disk space in {folder}: needs about {need >> 20} MB, "
                        f"{free >> 20} MB free.")


def add_to_library(path: Path, extra: dict[str, str]) -> dict[str, Any]:
    """Add a model MacLLM made (with its provenance in `extra`) to the library."""
    from macllm_app.core.formats.inspect import inspect_model
    from macllm_app.core.library.commands import entry_dict

    meta = inspect_model(path)
    inside = path.resolve().is_relative_to(paths.models_dir().resolve())
    source: Source = "copy" if inside else "link"
    entry = Catalogue().add(meta, path, source, extra=extra,
                            name=path.stem if path.is_file() else path.name)
    return entry_dict(entry)


def convert_into_library(src: str, dest: str, progress: ProgressCallback | None = None,
                         should_stop: StopCheck | None = None) -> dict[str, Any]:
    """Convert the GGUF file `src` into the new MLX folder `dest` and add it to the library."""
    from macllm_app.core.convert.gguf_to_mlx import convert_gguf_to_mlx

    source, target = Path(src), Path(dest)
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise ModelFileError(f"{source}: cannot read ({exc.strerror or exc})") from None
    check_space(target.parent, size)
    made = convert_gguf_to_mlx(source, target, progress=progress, should_stop=should_stop)
    return add_to_library(made, {"converted_from": str(source)})


def export_into_library(src: str, dest: str, progress: ProgressCallback | None = None,
                        should_stop: StopCheck | None = None) -> dict[str, Any]:
    """Export the MLX folder `src` as the new F16 GGUF file `dest` and add it to the library."""
    from macllm_app.core.convert.mlx_to_gguf import export_mlx_to_gguf
    from macllm_app.core.formats.mlx_folder import validate_mlx_folder

    source, target = Path(src), Path(dest)
    check_space(target.parent, 2 * validate_mlx_folder(source).n_params)  # F16: 2 bytes each
    made = export_mlx_to_gguf(source, target, progress=progress, should_stop=should_stop)
    return add_to_library(made, {"converted_from": str(source)})
