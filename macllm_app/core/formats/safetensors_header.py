"""Validate a .safetensors header: bounded length, JSON, dtypes, shapes and offsets."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from macllm_app.core.errors import ModelFileError

MAX_HEADER_BYTES = 100 << 20

DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}


@dataclass(frozen=True, slots=True)
class SafeTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]


def read_safetensors_header(path: Path) -> tuple[list[SafeTensor], dict[str, str]]:
    """Return the tensors and `__metadata__` of a safetensors file, or raise ModelFileError."""
    label = path.name

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"{label}: {problem}")

    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            if size < 8:
                raise fail("not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", f.read(8))
            if n > MAX_HEADER_BYTES:
                raise fail(f"header claims {n} bytes (limit {MAX_HEADER_BYTES})")
            if 8 + n > size:
                raise fail(f"header claims {n} bytes but the file has {size}")
            raw = f.read(n)
    except OSError as exc:
        raise ModelFileError(f"{label}: cannot read ({exc.strerror or exc})") from exc
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise fail("header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise fail("header is not a JSON object")
    data_size = size - 8 - n
    meta = header.pop("__metadata__", None) or {}  # mx.save_safetensors writes null
    if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise fail("__metadata__ must map strings to strings")
    tensors: list[SafeTensor] = []
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if not name:
            raise fail("empty tensor name")
        if not isinstance(info, dict):
            raise fail(f"tensor {name!r} entry is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise fail(f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise fail(f"tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(
                isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise fail(f"tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise fail(f"tensor {name!r} data_offsets {offsets} lie outside the file")
        count = 1
        for d in shape:
            count *= d
        if (end - begin) != count * DTYPE_SIZES[dtype]:
            raise fail(f"tensor {name!r} has {end - begin} bytes but shape {shape} "
                       f"of {dtype} needs {count * DTYPE_SIZES[dtype]}")
        tensors.append(SafeTensor(name, dtype, tuple(shape)))
        spans.append((begin, end, name))
    expected = 0
    for begin, end, name in sorted(spans):  # as the safetensors library requires
        if begin != expected:
            raise fail(f"tensor {name!r} data does not start where the previous one ends")
        expected = end
    if expected != data_size:
        raise fail(f"tensor data covers {expected} bytes but the file holds {data_size}")
    return tensors, meta
