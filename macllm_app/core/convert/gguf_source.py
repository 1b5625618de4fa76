"""Read a validated llama GGUF file: metadata and tensors as MLX arrays.

The header is checked by our own reader first; only then does native code
(`mx.load`) or the `gguf` package see the file. Quantized tensors come back in
MLX's layout: `NAME.weight` (uint32), `NAME.scales` and `NAME.biases`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from macllm_app.core.convert import gguf_quants
from macllm_app.core.errors import Cancelled, ModelFileError
from macllm_app.core.formats.ggml_types import MLX_GGUF_TYPES
from macllm_app.core.formats.gguf_reader import GGUFHeader, read_gguf_header
from macllm_app.core.types import ProgressCallback, StopCheck

SUPPORTED_ARCHITECTURES = frozenset({"llama"})



@dataclass
class GGUFContents:
    """Metadata as plain Python values, tensors by GGUF name, and the bits of each
    quantized tensor (by name without `.weight`)."""

    header: GGUFHeader
    meta: dict[str, Any]
    arrays: dict[str, Any] = field(default_factory=dict)
    bits: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.header.path.name


def open_llama_gguf(src: Path) -> GGUFHeader:
    """Validate the file's header and refuse architectures other than llama."""
    if not src.is_file():
        raise ModelFileError(f"{src}: no such GGUF file")
    header = read_gguf_header(src)
    arch = header.kv.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelFileError(
            f"{src.name}: architecture {arch!r} cannot be converted to MLX "
            f"(supported: {', '.join(sorted(SUPPORTED_ARCHITECTURES))})")
    return header


def _plain(value: Any) -> Any:
    import mlx.core as mx

    if isinstance(value, mx.array):
        return value.item() if value.ndim == 0 else value.tolist()
    return value


def _load_with_mlx(header: GGUFHeader) -> GGUFContents:
    import mlx.core as mx

    try:
        loaded: Any = mx.load(str(header.path), return_metadata=True)
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{header.path.name}: MLX could not read the tensors ({exc})") \
            from None
    arrays, meta = loaded
    contents = GGUFContents(header, {k: _plain(v) for k, v in meta.items()}, arrays)
    for t in header.tensors:
        bits = gguf_quants.REPACKED_BITS.get(t.type_name)
        if bits and t.name.endswith(".weight"):
            contents.bits[t.name.removesuffix(".weight")] = bits
    return contents


def _load_with_gguf(header: GGUFHeader, progress: ProgressCallback,
                    should_stop: StopCheck) -> GGUFContents:
    import mlx.core as mx
    from gguf import GGUFReader

    label = header.path.name
    try:
        reader = GGUFReader(header.path)
    except (ValueError, OSError) as exc:
        raise ModelFileError(f"{label}: cannot read the tensors ({exc})") from None
    meta = {name: f.contents() for name, f in reader.fields.items()
            if not name.startswith("GGUF.")}
    contents = GGUFContents(header, meta)
    n = len(reader.tensors)
    for i, t in enumerate(reader.tensors):
        if should_stop():
            raise Cancelled
        type_name = t.tensor_type.name
        bits = gguf_quants.REPACKED_BITS.get(type_name)
        if bits and t.name.endswith(".weight"):
            weight, scales, biases = gguf_quants.repack(np.asarray(t.data), type_name)
            base = t.name.removesuffix(".weight")
            contents.arrays[t.name] = mx.array(weight)
            contents.arrays[f"{base}.scales"] = mx.array(scales)
            contents.arrays[f"{base}.biases"] = mx.array(biases)
            contents.bits[base] = bits
        else:
            array = gguf_quants.dequantize(t.data, type_name, t.name, label)
            mx.eval(array)
            contents.arrays[t.name] = array
        progress((i + 1) / n, f"Reading {t.name}")
    return contents


def load_gguf(header: GGUFHeader, progress: ProgressCallback,
              should_stop: StopCheck) -> GGUFContents:
    """All metadata and tensors. Files whose tensor types MLX reads natively go
    through `mx.load`; others through the gguf package, decoding what MLX cannot."""
    if all(t.type_name in MLX_GGUF_TYPES for t in header.tensors):
        progress(0.0, "Reading tensors")
        contents = _load_with_mlx(header)
        progress(1.0, "Read tensors")
        return contents
    return _load_with_gguf(header, progress, should_stop)
