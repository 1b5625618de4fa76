"""A bounded, defensive GGUF header reader.

Reads only the header (key/values and tensor infos) through a small sliding
window, checks every count, length, type and offset against the file size
before trusting it, and raises `ModelFileError` with one line naming the file
and the problem. No native code ever sees a file this module has not accepted.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NoReturn

from macllm_app.core.errors import ModelFileError
from macllm_app.core.formats.ggml_types import TENSOR_TYPES, tensor_nbytes

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
CHUNK = 1 << 20
#: No single key or string value in a real model comes near this.
MAX_STRING = 64 << 20
#: All string values kept in memory together (chat templates, names, short arrays).
MAX_KEPT_TEXT = 128 << 20
#: String arrays whose entries llama.cpp requires to be distinct.
UNIQUE_ARRAYS = frozenset({"tokenizer.ggml.tokens"})
#: String arrays up to this size are remembered by digest (see `string_array`).
MAX_MEMO_REGION = 64 << 20
MEMO_MIN_COUNT = 1024
_MEMO: OrderedDict[tuple[int, bytes], tuple[int, bytes, bool]] = OrderedDict()
_MEMO_LOCK = threading.Lock()
#: Arrays at most this long keep their values (e.g. general.languages).
SMALL_ARRAY = 64

T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL = range(8)
T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(8, 13)
_SCALARS: dict[int, struct.Struct] = {
    T_UINT8: struct.Struct("<B"), T_INT8: struct.Struct("<b"),
    T_UINT16: struct.Struct("<H"), T_INT16: struct.Struct("<h"),
    T_UINT32: struct.Struct("<I"), T_INT32: struct.Struct("<i"),
    T_FLOAT32: struct.Struct("<f"), T_BOOL: struct.Struct("<B"),
    T_UINT64: struct.Struct("<Q"), T_INT64: struct.Struct("<q"),
    T_FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# Smallest possible encodings, used to reject impossible counts before looping.
_MIN_KV_BYTES = 8 + 1 + 4 + 1
_MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8

Value = int | float | bool | str


@dataclass(frozen=True, slots=True)
class GGUFArray:
    """An array value; `values` is kept only for short arrays."""

    elem_type: int
    count: int
    values: tuple[Value, ...] | None


@dataclass(frozen=True, slots=True)
class GGUFTensor:
    name: str
    dims: tuple[int, ...]
    type_id: int
    offset: int  # relative to the data section
    nbytes: int

    @property
    def type_name(self) -> str:
        return TENSOR_TYPES[self.type_id].name

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    path: Path
    version: int
    file_size: int
    alignment: int
    data_offset: int
    kv: dict[str, Value | GGUFArray]
    tensors: tuple[GGUFTensor, ...]
    kv_types: dict[str, int] = field(default_factory=dict)  # key -> GGUF value type (T_*)


class _Reader:
    """Sequential reads through a sliding window, every read checked against the file size."""

    def __init__(self, f: BinaryIO, size: int, label: str) -> None:
        self.f = f
        self.size = size
        self.label = label
        self.buf = b""
        self.buf_start = 0
        self.pos = 0
        self.kept = 0

    def fail(self, problem: str) -> NoReturn:
        raise ModelFileError(f"{self.label}: {problem}")

    def ensure(self, n: int, what: str) -> int:
        """Make n bytes at pos available; return their index in self.buf."""
        end = self.pos + n
        if end > self.size:
            self.fail(f"file ends inside {what} (offset {self.pos}, file size {self.size})")
        buf_end = self.buf_start + len(self.buf)
        if end > buf_end:
            if self.pos >= buf_end:
                self.f.seek(self.pos)
                self.buf = self.f.read(max(n, CHUNK))
            else:
                self.f.seek(buf_end)
                more = self.f.read(max(end - buf_end, CHUNK))
                self.buf = self.buf[self.pos - self.buf_start:] + more
            self.buf_start = self.pos
            if len(self.buf) < n:
                self.fail(f"file ends inside {what} (it changed while being read)")
        return self.pos - self.buf_start

    def scalar(self, st: struct.Struct, what: str) -> int | float:
        i = self.ensure(st.size, what)
        self.pos += st.size
        value: int | float = st.unpack_from(self.buf, i)[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar(_U32, what))

    def u64(self, what: str) -> int:
        return int(self.scalar(_U64, what))

    def raw_string(self, what: str) -> bytes:
        n = self.u64(f"the length of {what}")
        if n > MAX_STRING:
            self.fail(f"{what} claims {n} bytes (limit {MAX_STRING})")
        i = self.ensure(n, what)
        self.pos += n
        return self.buf[i:i + n]

    def text(self, what: str) -> str:
        raw = self.raw_string(what)
        self.kept += len(raw)
        if self.kept > MAX_KEPT_TEXT:
            self.fail(f"metadata text exceeds {MAX_KEPT_TEXT >> 20} MB")
        return raw.decode("utf-8", errors="replace")

    def name(self, what: str) -> str:
        raw = self.raw_string(what)
        if not raw:
            self.fail(f"empty {what}")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not valid UTF-8")

    def skip_strings(self, count: int, what: str) -> None:
        """Skip `count` length-prefixed strings without reading them (token lists).

        Strings are only jumped over, never loaded, so their lengths need no cap
        beyond the file size, which is checked before the next read.
        """
        remaining = count
        unpack = _U64.unpack_from
        while remaining:
            i = self.ensure(8, what)
            buf, p, done = self.buf, i, 0
            try:
                for done in range(remaining):  # noqa: B007 (done counts finished strings)
                    p += 8 + unpack(buf, p)[0]
                done = remaining
            except (struct.error, OverflowError):  # p ran past the window: refill, go on
                pass
            self.pos += p - i
            remaining -= done
            if self.pos > self.size:
                self.fail(f"a string in {what} runs past the end of the file")

    def string_array(self, count: int, what: str, distinct: bool) -> None:
        """Skip `count` strings; with `distinct`, fail if one repeats (llama.cpp aborts on
        duplicate tokens).

        Verdicts are remembered by a digest of the exact bytes walked, so checking
        the same vocabulary again (inspect, then import) costs one read and one hash.
        """
        start = self.pos
        i = self.ensure(min(64, self.size - start), what)
        key = (count, self.buf[i:i + 64])
        with _MEMO_LOCK:
            known = _MEMO.get(key)
        if known is not None:
            extent, digest, was_distinct = known
            region = self._region(start, extent)
            if region is not None and _digest(region, count) == digest:
                if distinct and not was_distinct:
                    _check_distinct(self, region, count, what)
                self.pos = start + extent
                _remember(key, (extent, digest, was_distinct or distinct))
                return
        self.skip_strings(count, what)
        extent = self.pos - start
        if extent > MAX_MEMO_REGION:
            if distinct:
                self.fail(f"{what} is larger than {MAX_MEMO_REGION >> 20} MB")
            return
        region = self._region(start, extent)
        if region is None:
            self.fail(f"file ends inside {what} (it changed while being read)")
        if distinct:
            _check_distinct(self, region, count, what)
        _remember(key, (extent, _digest(region, count), distinct))

    def _region(self, start: int, size: int) -> bytes | None:
        if start + size > self.size:
            return None
        self.f.seek(start)
        data = self.f.read(size)
        return data if len(data) == size else None


def _digest(region: bytes, count: int) -> bytes:
    return hashlib.blake2b(region, digest_size=20, person=count.to_bytes(8, "little")).digest()


def _remember(key: tuple[int, bytes], value: tuple[int, bytes, bool]) -> None:
    with _MEMO_LOCK:
        _MEMO[key] = value
        _MEMO.move_to_end(key)
        while len(_MEMO) > 64:
            _MEMO.popitem(last=False)


def _check_distinct(r: _Reader, region: bytes, count: int, what: str) -> None:
    """`region` holds exactly `count` well-formed strings (already walked)."""
    unpack = _U64.unpack_from
    starts: list[int] = []
    p = 0
    for _ in range(count):
        starts.append(p + 8)
        p += 8 + unpack(region, p)[0]
    ends = [s - 8 for s in starts[1:]] + [len(region)]
    distinct = len(set(map(region.__getitem__, map(slice, starts, ends))))
    if distinct != count:
        r.fail(f"{what} has {count - distinct} duplicate entries")


def read_gguf_header(path: Path) -> GGUFHeader:
    """Parse and validate a GGUF header; raise ModelFileError naming the file and problem."""
    label = path.name
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            return _parse(_Reader(f, size, label), path)
    except OSError as exc:
        raise ModelFileError(f"{label}: cannot read ({exc.strerror or exc})") from exc


def _parse(r: _Reader, path: Path) -> GGUFHeader:
    if r.size < 8:
        r.fail("not a GGUF file (too short)")
    i = r.ensure(4, "the magic number")
    if r.buf[i:i + 4] != MAGIC:
        r.fail("not a GGUF file (bad magic number)")
    r.pos = 4
    version = r.u32("the version")
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0 and version >> 16 in SUPPORTED_VERSIONS:
            r.fail("big-endian GGUF files are not supported")
        r.fail(f"unsupported GGUF version {version} (supported: 2, 3)")
    n_tensors = r.u64("the tensor count")
    n_kv = r.u64("the key/value count")
    if n_kv > (r.size - r.pos) // _MIN_KV_BYTES:
        r.fail(f"key/value count {n_kv} cannot fit in a {r.size}-byte file")
    if n_tensors > (r.size - r.pos) // _MIN_TENSOR_INFO_BYTES:
        r.fail(f"tensor count {n_tensors} cannot fit in a {r.size}-byte file")

    kv: dict[str, Value | GGUFArray] = {}
    kv_types: dict[str, int] = {}
    for _ in range(n_kv):
        key = r.name("metadata key")
        if key in kv:
            r.fail(f"duplicate metadata key {key!r}")
        type_id = r.u32(f"the type of {key!r}")
        if key == "general.alignment" and type_id != T_UINT32:
            r.fail("general.alignment must be a uint32")  # llama.cpp asserts on other types
        kv[key] = _read_value(r, type_id, key)
        kv_types[key] = type_id

    alignment = kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if (not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0
            or alignment & (alignment - 1)):
        r.fail(f"general.alignment {alignment!r} is not a power of two")

    tensors = _read_tensor_infos(r, n_tensors)
    data_offset = -(-r.pos // alignment) * alignment
    _check_tensor_layout(r, tensors, data_offset, alignment)
    return GGUFHeader(path=path, version=version, file_size=r.size, alignment=alignment,
                      data_offset=data_offset, kv=kv, tensors=tuple(tensors), kv_types=kv_types)


def _read_value(r: _Reader, type_id: int, key: str) -> Value | GGUFArray:
    if type_id == T_STRING:
        return r.text(f"the value of {key!r}")
    if type_id == T_ARRAY:
        elem = r.u32(f"the element type of {key!r}")
        count = r.u64(f"the length of {key!r}")
        if elem == T_ARRAY:
            r.fail(f"{key!r} is an array of arrays (not supported)")
        if elem == T_STRING:
            if count > (r.size - r.pos) // 8:
                r.fail(f"{key!r} claims {count} strings, more than the file can hold")
            if key in UNIQUE_ARRAYS or count >= MEMO_MIN_COUNT:
                r.string_array(count, f"{key!r}", distinct=key in UNIQUE_ARRAYS)
                return GGUFArray(elem, count, None)
            if count <= SMALL_ARRAY:
                return GGUFArray(elem, count, tuple(
                    r.text(f"an element of {key!r}") for _ in range(count)))
            r.skip_strings(count, f"{key!r}")
            return GGUFArray(elem, count, None)
        st = _SCALARS.get(elem)
        if st is None:
            r.fail(f"{key!r} has unknown array element type {elem}")
        if count > (r.size - r.pos) // st.size:
            r.fail(f"{key!r} claims {count} elements, more than the file can hold")
        if count <= SMALL_ARRAY:
            i = r.ensure(count * st.size, f"{key!r}")
            values = tuple(v[0] for v in st.iter_unpack(r.buf[i:i + count * st.size]))
            r.pos += count * st.size
            return GGUFArray(elem, count, values)
        r.pos += count * st.size
        return GGUFArray(elem, count, None)
    st = _SCALARS.get(type_id)
    if st is None:
        r.fail(f"{key!r} has unknown value type {type_id}")
    value = r.scalar(st, f"the value of {key!r}")
    return bool(value) if type_id == T_BOOL else value


def _read_tensor_infos(r: _Reader, n_tensors: int) -> list[GGUFTensor]:
    tensors: list[GGUFTensor] = []
    seen: set[str] = set()
    for _ in range(n_tensors):
        name = r.name("tensor name")
        if name in seen:
            r.fail(f"duplicate tensor name {name!r}")
        seen.add(name)
        n_dims = r.u32(f"the dimension count of {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            r.fail(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        dims = tuple(r.u64(f"the shape of {name!r}") for _ in range(n_dims))
        if any(d <= 0 for d in dims):
            r.fail(f"tensor {name!r} has a zero dimension {list(dims)}")
        type_id = r.u32(f"the type of {name!r}")
        tt = TENSOR_TYPES.get(type_id)
        if tt is None:
            r.fail(f"tensor {name!r} has unknown type {type_id}")
        if dims[0] % tt.block_size:
            r.fail(f"tensor {name!r} row of {dims[0]} is not a multiple of the "
                   f"{tt.name} block size {tt.block_size}")
        offset = r.u64(f"the offset of {name!r}")
        n_elements = 1
        for d in dims:
            n_elements *= d
        if n_elements >= 1 << 63:
            r.fail(f"tensor {name!r} has {n_elements} elements (too many)")
        tensors.append(GGUFTensor(name, dims, type_id, offset, tensor_nbytes(type_id, dims)))
    return tensors


def _check_tensor_layout(r: _Reader, tensors: list[GGUFTensor], data_offset: int,
                         alignment: int) -> None:
    """Tensors in file order, each at the aligned end of the previous one (as llama.cpp
    requires), and all inside the file."""
    data_size = r.size - data_offset
    if tensors and data_size < 0:
        r.fail("file ends before the tensor data")
    expected = 0
    for t in tensors:
        if t.offset != expected:
            r.fail(f"tensor {t.name!r} is at data offset {t.offset}, expected {expected} "
                   f"(tensors must follow each other, aligned to {alignment})")
        if t.offset + t.nbytes > data_size:
            r.fail(f"tensor {t.name!r} ({t.nbytes} bytes at data offset {t.offset}) "
                   f"extends past the end of the file")
        expected += -(-t.nbytes // alignment) * alignment
