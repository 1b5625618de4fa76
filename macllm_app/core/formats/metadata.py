"""What the library knows about a model without loading it."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from macllm_app.core.formats.ggml_types import FILE_TYPES, MLX_GGUF_TYPES
from macllm_app.core.formats.gguf_reader import GGUFArray, GGUFHeader, Value

ModelFormat = Literal["gguf", "mlx"]


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    path: str
    format: ModelFormat
    name: str
    architecture: str
    n_params: int
    quantization: str
    tensor_types: dict[str, int]
    context_length: int | None
    has_chat_template: bool
    size_bytes: int
    engines: tuple[str, ...]
    n_layers: int | None = None
    embedding_length: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    vocab_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["engines"] = list(self.engines)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["engines"] = tuple(known.get("engines", ()))
        return cls(**known)


def _int(value: Value | GGUFArray | None) -> int | None:
    if isinstance(value, GGUFArray):  # per-layer values (e.g. head_count_kv): take the max
        nums = [v for v in value.values or () if isinstance(v, int) and not isinstance(v, bool)]
        return max(nums) if nums else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _str(value: Value | GGUFArray | None) -> str | None:
    return value if isinstance(value, str) else None


def gguf_metadata(header: GGUFHeader) -> ModelMetadata:
    kv = header.kv
    arch = _str(kv.get("general.architecture")) or "unknown"

    def arch_int(key: str) -> int | None:
        return _int(kv.get(f"{arch}.{key}"))

    types = Counter(t.type_name for t in header.tensors)
    file_type = _int(kv.get("general.file_type"))
    if file_type is not None and file_type in FILE_TYPES:
        quant = FILE_TYPES[file_type]
    elif types:  # the most common type among 2-D weights
        weights = Counter(t.type_name for t in header.tensors if len(t.dims) >= 2)
        quant = (weights or types).most_common(1)[0][0]
    else:
        quant = "unknown"
    n_heads = arch_int("attention.head_count")
    n_kv = arch_int("attention.head_count_kv") or n_heads
    emb = arch_int("embedding_length")
    head_dim = arch_int("attention.key_length") or (emb // n_heads if emb and n_heads else None)
    engines = ["llama.cpp"]
    if arch == "llama" and types and set(types) <= MLX_GGUF_TYPES:
        engines.append("mlx")
    tokens = kv.get("tokenizer.ggml.tokens")
    vocab = tokens.count if isinstance(tokens, GGUFArray) else arch_int("vocab_size")
    return ModelMetadata(
        path=str(header.path),
        format="gguf",
        name=_str(kv.get("general.name")) or header.path.stem,
        architecture=arch,
        n_params=sum(t.n_elements for t in header.tensors),
        quantization=quant,
        tensor_types=dict(types.most_common()),
        context_length=arch_int("context_length"),
        has_chat_template=bool(_str(kv.get("tokenizer.chat_template"))),
        size_bytes=header.file_size,
        engines=tuple(engines),
        n_layers=arch_int("block_count"),
        embedding_length=emb,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        vocab_size=vocab,
        extra={"gguf_version": header.version, "tensor_count": len(header.tensors)},
    )
