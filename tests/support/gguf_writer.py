"""Write small GGUF files by hand (struct), for tests that need models on disk."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from macllm_app.core.formats.ggml_types import FILE_TYPES, TENSOR_TYPES, tensor_nbytes

T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64 = 4, 5, 6, 7, 8, 9, 10
_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B",
        10: "<Q", 11: "<q", 12: "<d"}


def gguf_string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(raw)) + raw


def gguf_value(type_id: int, value: object) -> bytes:
    if type_id == T_STRING:
        assert isinstance(value, str | bytes)
        return gguf_string(value)
    if type_id == T_ARRAY and isinstance(value, bytes):  # hand-written (invalid) arrays
        return value
    if type_id == T_ARRAY:
        assert isinstance(value, tuple)
        elem, items = value
        body = b"".join(gguf_value(elem, v) for v in items)
        return struct.pack("<IQ", elem, len(items)) + body
    if type_id not in _FMT:  # an invalid type, written as given
        assert isinstance(value, bytes)
        return value
    return struct.pack(_FMT[type_id], value)


@dataclass
class TinyGGUF:
    """A tiny llama-like model: metadata plus tensors (name, dims, ggml type id)."""

    arch: str = "llama"
    name: str = "Tiny Test Model"
    kv: list[tuple[str, int, object]] = field(default_factory=list)
    tensors: list[tuple[str, tuple[int, ...], int]] = field(default_factory=list)
    alignment: int = 32
    version: int = 3
    offset_override: dict[str, int] = field(default_factory=dict)

    @classmethod
    def llama(cls, n_layers: int = 2, emb: int = 64, quant: str = "Q4_0",
              **kw: object) -> TinyGGUF:
        """A llama-shaped model whose 2-D weights are `quant` (a ggml type name)."""
        model = cls(**kw)  # type: ignore[arg-type]
        ftype_id = type_id(quant)
        file_type = next(i for i, n in FILE_TYPES.items() if n == quant.replace("Q4_K", "Q4_K_M"))
        a = model.arch
        model.kv = [
            ("general.architecture", T_STRING, a),
            ("general.name", T_STRING, model.name),
            ("general.file_type", T_UINT32, file_type),
            (f"{a}.block_count", T_UINT32, n_layers),
            (f"{a}.context_length", T_UINT32, 2048),
            (f"{a}.embedding_length", T_UINT32, emb),
            (f"{a}.attention.head_count", T_UINT32, 4),
            (f"{a}.attention.head_count_kv", T_UINT32, 2),
            ("tokenizer.ggml.model", T_STRING, "gpt2"),
            ("tokenizer.ggml.tokens", T_ARRAY, (T_STRING, ("<s>", "a", "b", "c"))),
            ("tokenizer.chat_template", T_STRING, "{{ messages }}"),
        ]
        model.tensors = [("token_embd.weight", (emb, 4), ftype_id),
                         ("output_norm.weight", (emb,), 0)]
        for i in range(n_layers):
            model.tensors.append((f"blk.{i}.attn_q.weight", (emb, emb), ftype_id))
        return model

    def header_and_layout(self) -> tuple[bytes, int]:
        """Header bytes (padded to the data section) and the data section size."""
        kv = list(self.kv)
        if self.alignment != 32:
            kv.append(("general.alignment", T_UINT32, self.alignment))
        out = bytearray(b"GGUF" + struct.pack("<IQQ", self.version, len(self.tensors), len(kv)))
        for key, type_id, value in kv:
            out += gguf_string(key) + struct.pack("<I", type_id) + gguf_value(type_id, value)
        offset = 0
        for name, dims, type_id in self.tensors:
            out += gguf_string(name) + struct.pack("<I", len(dims))
            out += b"".join(struct.pack("<Q", d) for d in dims)
            out += struct.pack("<IQ", type_id, self.offset_override.get(name, offset))
            nbytes = tensor_nbytes(type_id, dims) if type_id in TENSOR_TYPES else 0
            offset += -(-nbytes // self.alignment) * self.alignment
        out += b"\0" * (-len(out) % self.alignment)
        return bytes(out), offset

    def write(self, path: Path) -> Path:
        """Write the file; tensor data is a sparse hole (zeros), which the reader never checks."""
        header, data_size = self.header_and_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            f.write(header)
            f.truncate(len(header) + data_size)
        return path


def type_id(name: str) -> int:
    return next(i for i, t in TENSOR_TYPES.items() if t.name == name)
