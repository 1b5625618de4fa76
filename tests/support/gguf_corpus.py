"""A GGUF fuzz corpus derived from a real model's header.

`FieldMap.of(header)` records where every field of the header lives;
`mutations(...)` yields deterministic mutants as byte patches plus a file size,
so a runner can apply each one to a single working file (header + sparse,
zero-filled tensor data) instead of copying a 98 MB model a thousand times.
`materialize()` writes mutants as separate files for inspection by hand.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
HUGE = (2**64 - 1, 2**63, 2**40, 100 * 2**30, 2**32 + 1)


@dataclass(frozen=True)
class Mutation:
    kind: str
    patches: tuple[tuple[int, bytes], ...]
    size: int


@dataclass
class FieldMap:
    header: bytes
    file_size: int
    data_offset: int
    fields: dict[str, list[int]] = field(default_factory=dict)
    keys: list[tuple[int, bytes]] = field(default_factory=list)  # (offset of length, key)
    tensor_names: list[tuple[int, bytes]] = field(default_factory=list)

    def add(self, kind: str, offset: int) -> None:
        self.fields.setdefault(kind, []).append(offset)

    @classmethod
    def of(cls, path: Path) -> FieldMap:
        """Map a valid GGUF file's header (read only up to the data section)."""
        from macllm_app.core.formats.gguf_reader import read_gguf_header

        info = read_gguf_header(path)
        with path.open("rb") as f:
            header = f.read(info.data_offset)
        m = cls(header, info.file_size, info.data_offset)
        u32 = lambda o: struct.unpack_from("<I", header, o)[0]  # noqa: E731
        u64 = lambda o: struct.unpack_from("<Q", header, o)[0]  # noqa: E731
        m.add("version", 4)
        m.add("tensor_count", 8)
        m.add("kv_count", 16)
        pos = 24
        for _ in range(u64(16)):
            m.add("key_len", pos)
            m.keys.append((pos, header[pos + 8:pos + 8 + u64(pos)]))
            pos += 8 + u64(pos)
            m.add("value_type", pos)
            vtype = u32(pos)
            pos += 4
            if vtype == 8:
                m.add("str_len", pos)
                pos += 8 + u64(pos)
            elif vtype == 9:
                m.add("arr_type", pos)
                etype = u32(pos)
                m.add("arr_len", pos + 4)
                n = u64(pos + 4)
                pos += 12
                if etype == 8:
                    for _ in range(n):
                        m.add("elem_str_len", pos)
                        pos += 8 + u64(pos)
                else:
                    pos += n * _SCALAR_SIZES[etype]
            else:
                pos += _SCALAR_SIZES[vtype]
        for _ in range(u64(8)):
            m.add("tensor_name_len", pos)
            m.tensor_names.append((pos, header[pos + 8:pos + 8 + u64(pos)]))
            pos += 8 + u64(pos)
            m.add("n_dims", pos)
            n_dims = u32(pos)
            pos += 4
            for _ in range(n_dims):
                m.add("dim", pos)
                pos += 8
            m.add("tensor_type", pos)
            m.add("tensor_offset", pos + 4)
            pos += 12
        m.fields["tensor_info_end"] = [pos]
        return m


def _q(v: int) -> bytes:
    return struct.pack("<Q", v % 2**64)


def _i(v: int) -> bytes:
    return struct.pack("<I", v % 2**32)


def _same_length_pair(items: list[tuple[int, bytes]], rng: random.Random) -> Mutation | None:
    by_len: dict[int, list[tuple[int, bytes]]] = {}
    for off, name in items:
        by_len.setdefault(len(name), []).append((off, name))
    groups = [g for g in by_len.values() if len(g) >= 2]
    if not groups:
        return None
    (_, a), (off_b, _) = rng.sample(rng.choice(groups), 2)
    return Mutation("duplicate", ((off_b + 8, a),), 0)


def _mutate(m: FieldMap, kind: str, rng: random.Random) -> Mutation:
    size = m.file_size
    pick = lambda name: rng.choice(m.fields[name])  # noqa: E731
    if kind == "truncate":
        cut = rng.randrange(0, len(m.header)) if rng.random() < 0.9 else rng.randrange(0, size)
        return Mutation(kind, (), cut)
    if kind == "huge_count":
        return Mutation(kind, ((pick(rng.choice(["tensor_count", "kv_count"])),
                                _q(rng.choice([*HUGE, 10**6, 273, 34]))),), size)
    if kind == "huge_length":
        name = rng.choice(["key_len", "str_len", "elem_str_len", "tensor_name_len"])
        value = rng.choice([*HUGE, m.file_size, rng.randrange(1, 1 << 16)])
        return Mutation(f"{kind}:{name}", ((pick(name), _q(value)),), size)
    if kind == "huge_array":
        return Mutation(kind, ((pick("arr_len"), _q(rng.choice([*HUGE, 10**7]))),), size)
    if kind == "bad_offset":
        value = rng.choice([size, size * 2, 2**64 - 32, rng.randrange(0, size) | 1, 0])
        return Mutation(kind, ((pick("tensor_offset"), _q(value)),), size)
    if kind == "zero_dim":
        return Mutation(kind, ((pick("dim"), _q(rng.choice([0, 2**63, 2**64 - 1, 7]))),), size)
    if kind == "n_dims":
        return Mutation(kind, ((pick("n_dims"), _i(rng.choice([0, 5, 2**32 - 1, 3]))),), size)
    if kind == "bad_type":
        name = rng.choice(["value_type", "arr_type", "tensor_type"])
        value = rng.choice([4, 5, 9, 13, 31, 99, 255, 2**32 - 1]) if name != "value_type" \
            else rng.choice([9, 13, 255, 2**31, 12, 0])
        return Mutation(f"{kind}:{name}", ((pick(name), _i(value)),), size)
    if kind == "empty_key":
        off = pick(rng.choice(["key_len", "tensor_name_len"]))
        return Mutation(kind, ((off, _q(0)),), size)
    if kind == "duplicate":
        dup = _same_length_pair(m.keys if rng.random() < 0.5 else m.tensor_names, rng)
        if dup is not None:
            return Mutation("duplicate", dup.patches, size)
        kind = "byte_flip"
    if kind == "magic_version":
        if rng.random() < 0.5:
            return Mutation(kind, ((0, rng.choice([b"GGUG", b"\0\0\0\0", b"FUGG"])),), size)
        return Mutation(kind, ((4, _i(rng.choice([0, 1, 4, 3 << 24, 2**32 - 1]))),), size)
    # byte_flip: 1-8 random bytes anywhere in the header (often still valid)
    patches = []
    for _ in range(rng.randint(1, 8)):
        off = rng.randrange(0, len(m.header))
        patches.append((off, bytes([m.header[off] ^ (1 << rng.randrange(8))])))
    return Mutation("byte_flip", tuple(patches), size)


KINDS = ("truncate", "huge_count", "huge_length", "huge_array", "bad_offset", "zero_dim",
         "n_dims", "bad_type", "empty_key", "duplicate", "magic_version", "byte_flip",
         "byte_flip")


def mutations(m: FieldMap, count: int, seed: int = 1234) -> Iterator[Mutation]:
    rng = random.Random(seed)
    for i in range(count):
        yield _mutate(m, KINDS[i % len(KINDS)], rng)


class WorkingFile:
    """One file holding the base header + a sparse data section; mutants applied and undone."""

    def __init__(self, m: FieldMap, path: Path) -> None:
        self.m = m
        self.path = path
        with path.open("wb") as f:
            f.write(m.header)
            f.truncate(m.file_size)

    def apply(self, mut: Mutation) -> None:
        with self.path.open("r+b") as f:
            for off, data in mut.patches:
                f.seek(off)
                f.write(data)
            if mut.size != self.m.file_size:
                f.truncate(mut.size)

    def undo(self, mut: Mutation) -> None:
        header, base_size = self.m.header, self.m.file_size
        with self.path.open("r+b") as f:
            if mut.size != base_size:
                f.truncate(base_size)
                if mut.size < len(header):
                    f.seek(mut.size)
                    f.write(header[mut.size:])
            for off, data in mut.patches:
                original = header[off:off + len(data)]
                f.seek(off)
                f.write(original + b"\0" * (len(data) - len(original)))


def materialize(m: FieldMap, out_dir: Path, count: int, seed: int = 1234) -> list[Path]:
    """Write each mutant as its own (sparse) file, for looking at by hand."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, mut in enumerate(mutations(m, count, seed)):
        path = out_dir / f"{i:04d}-{mut.kind.replace(':', '-')}.gguf"
        with path.open("wb") as f:
            f.write(m.header)
            f.truncate(m.file_size)
            for off, data in mut.patches:
                f.seek(off)
                f.write(data)
            f.truncate(mut.size)
        written.append(path)
    return written
