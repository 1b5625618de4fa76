"""Importance matrices in llama.cpp's formats: `imatrix.gguf` (each weight's
`<name>.in_sum2` and `<name>.counts` tensors, with `imatrix.*` metadata) and the
legacy `.dat` file, read the way `llama-quantize` reads them and handed to
`llama_model_quantize` as per-tensor means of the squared activations."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from macllm_app.core.errors import UserError

IN_SUM2, COUNTS = ".in_sum2", ".counts"
KEY_DATASETS, KEY_CHUNK_COUNT, KEY_CHUNK_SIZE = (
    "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size")


def read_imatrix(path: Path) -> dict[str, np.ndarray]:
    """Each weight's importance values (squared activations, averaged), by tensor name."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise UserError(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    data = _read_gguf(path) if magic == b"GGUF" else _read_legacy(path)
    if not data:
        raise UserError(f"{path.name}: not an importance matrix (no entries)")
    return data


def _read_gguf(path: Path) -> dict[str, np.ndarray]:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # the gguf package raises many kinds on a broken file
        raise UserError(f"{path.name}: not a readable imatrix.gguf ({exc})") from None
    if KEY_CHUNK_COUNT not in reader.fields:
        raise UserError(f"{path.name}: a GGUF file, but not an importance matrix")
    tensors = {t.name: np.asarray(t.data, dtype=np.float32).reshape(-1) for t in reader.tensors}
    out: dict[str, np.ndarray] = {}
    for name, sums in tensors.items():
        if not name.endswith(IN_SUM2):
            continue
        weight = name[:-len(IN_SUM2)]
        counts = tensors.get(weight + COUNTS)
        if counts is None or counts.size == 0 or sums.size % counts.size:
            raise UserError(f"{path.name}: the entry for {weight} is incomplete")
        rows = sums.reshape(counts.size, -1)
        safe = np.where(counts > 0, counts, 1.0)[:, None]
        out[weight] = np.where(counts[:, None] > 0, rows / safe, 1.0).astype(np.float32).ravel()
    return out


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    out: dict[str, np.ndarray] = {}
    try:
        (entries,) = struct.unpack_from("<i", raw, 0)
        offset = 4
        if entries < 1:
            raise ValueError("no entries")
        for _ in range(entries):
            (length,) = struct.unpack_from("<i", raw, offset)
            name = raw[offset + 4:offset + 4 + length].decode()
            offset += 4 + length
            ncall, nval = struct.unpack_from("<ii", raw, offset)
            offset += 8
            if nval < 1 or offset + 4 * nval > len(raw):
                raise ValueError(f"bad entry {name}")
            sums = np.frombuffer(raw, np.float32, nval, offset)
            offset += 4 * nval
            out[name] = (sums / ncall if ncall > 0 else sums).astype(np.float32)
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path.name}: not an importance matrix ({exc})") from None
    return out


def write_imatrix(path: Path, sums: dict[str, np.ndarray], counts: dict[str, np.ndarray], *,
                  datasets: list[str], chunk_count: int, chunk_size: int) -> None:
    """Write `imatrix.gguf` as llama-imatrix does: for each weight, its summed squared
    activations (one row per expert) and how many tokens each row saw."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch="imatrix")
    writer.add_array(KEY_DATASETS, datasets)
    writer.add_uint32(KEY_CHUNK_COUNT, chunk_count)
    writer.add_uint32(KEY_CHUNK_SIZE, chunk_size)
    for name in sorted(sums):
        seen = np.asarray(counts[name], dtype=np.float32).reshape(-1)
        writer.add_tensor(name + IN_SUM2,
                          np.asarray(sums[name], dtype=np.float32).reshape(seen.size, -1))
        writer.add_tensor(name + COUNTS, seen)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def imatrix_entries(lc: Any, path: Path, keep: list[Any]) -> Any:
    """`llama_model_imatrix_data` entries for `llama_model_quantize_params.imatrix`,
    ending with a null name as llama.cpp expects; `keep` holds the buffers alive."""
    import ctypes

    data = read_imatrix(path)
    entries = (lc.llama_model_imatrix_data * (len(data) + 1))()
    for slot, (name, values) in zip(entries, data.items(), strict=False):
        buffer = np.ascontiguousarray(values, dtype=np.float32)
        keep.append(buffer)
        slot.name = name.encode()
        slot.data = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        slot.size = buffer.size
    keep.append(entries)
    return ctypes.cast(entries, ctypes.POINTER(lc.llama_model_imatrix_data))
