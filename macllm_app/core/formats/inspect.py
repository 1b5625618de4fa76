"""Recognise a model path (GGUF file or MLX folder), validate it, return its metadata.

`check_gguf_file` is the one GGUF check: the library runs it before it lists
or imports a file, the llama.cpp engine before llama.cpp sees one.
"""

from __future__ import annotations

from pathlib import Path

from macllm_app.core.errors import ModelFileError
from macllm_app.core.formats.gguf_reader import MAGIC, GGUFHeader, read_gguf_header
from macllm_app.core.formats.metadata import ModelMetadata, gguf_metadata


def check_gguf_file(path: Path) -> GGUFHeader:
    """Validate a GGUF file's header without loading the model (ModelFileError, one line)."""
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or folder")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a regular file")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelFileError(f"{path.name}: cannot read ({exc.strerror or exc})") from exc
    if magic != MAGIC:
        if path.suffix == ".safetensors":
            raise ModelFileError(f"{path.name}: a lone safetensors file; import its folder")
        raise ModelFileError(f"{path.name}: not a GGUF file or MLX model folder")
    return read_gguf_header(path)


def inspect_model(path: Path, allowed_root: Path | None = None) -> ModelMetadata:
    """Validate a model without loading it; ModelFileError (one line) if it is unusable."""
    if path.is_dir():
        from macllm_app.core.formats.mlx_folder import validate_mlx_folder

        return validate_mlx_folder(path, allowed_root)
    return gguf_metadata(check_gguf_file(path))
