"""Will it fit? Estimate a model's memory at a context length against this machine's RAM.

expected = engine overhead + weights (file size) + KV cache (f16) + base
buffers (vocabulary, output) + the activations of one full prompt batch.
worst    = expected + the attention scores of a batch against a full context
           (llama.cpp without flash attention materialises n_ctx x n_ubatch x
           n_head floats), the peak once a long conversation fills the window.

Calibration (Linux x86_64, llama-cpp-python 0.3.36 CPU build, SmolLM2-135M
Q4_1, measured with tests/library/measure_llama.py as peak RSS of a fresh
process): interpreter + `import llama_cpp` = 50.1 MB; a loaded model after a
short generation leaves 24 MB above overhead + weights + KV, which scales
with the vocabulary (49,152 tokens -> ~480 bytes per token).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from macllm_app.core.platform import memory

Verdict = Literal["fits", "tight", "wont_fit"]
MB = 1_000_000
GB = 1_000_000_000

#: Peak RSS of a bare interpreter that has imported the engine.
ENGINE_OVERHEAD: dict[str, int] = {
    "llama.cpp": 50 * MB,  # measured (see module docstring)
    "mlx": 150 * MB,  # not measured here (no Apple Silicon on CI); mlx + mlx-lm import
}
BYTES_PER_VOCAB_TOKEN = 480
N_UBATCH = 512
KV_BYTES = 2  # f16 K and V
_DEFAULT_FF_RATIO = 4


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the estimate needs; build one from ModelMetadata with `shape_of`."""

    size_bytes: int
    n_layers: int | None
    n_kv_heads: int | None
    head_dim: int | None
    n_heads: int | None = None
    embedding_length: int | None = None
    vocab_size: int | None = None
    n_params: int = 0


@dataclass(frozen=True, slots=True)
class FitEstimate:
    engine: str
    n_ctx: int
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    overhead_bytes: int
    expected_bytes: int
    worst_case_bytes: int
    total_ram_bytes: int
    available_ram_bytes: int
    verdict: Verdict
    recommended_quant: str | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def shape_of(meta: Any) -> ModelShape:
    """From a ModelMetadata (duck-typed, so hardware/ does not import library/)."""
    return ModelShape(size_bytes=meta.size_bytes, n_layers=meta.n_layers,
                      n_kv_heads=meta.n_kv_heads, head_dim=meta.head_dim, n_heads=meta.n_heads,
                      embedding_length=meta.embedding_length, vocab_size=meta.vocab_size,
                      n_params=meta.n_params)


def kv_cache_bytes(shape: ModelShape, n_ctx: int) -> int:
    if not (shape.n_layers and shape.n_kv_heads and shape.head_dim):
        return 0
    return 2 * shape.n_layers * n_ctx * shape.n_kv_heads * shape.head_dim * KV_BYTES


def compute_bytes(shape: ModelShape, n_ctx: int) -> tuple[int, int]:
    """(typical, extra at a full context) working memory beyond weights and KV."""
    vocab = shape.vocab_size or 32_000
    emb = shape.embedding_length or 4096
    heads = shape.n_heads or 32
    u = min(N_UBATCH, n_ctx)
    base = vocab * BYTES_PER_VOCAB_TOKEN + vocab * 4  # tokenizer tables + one logits row
    attn_scores = 2 * u * u * heads * 4  # scores + softmax for a batch against itself
    activations = u * emb * 4 * 6 + u * emb * _DEFAULT_FF_RATIO * 4 * 3
    full_scores = max(n_ctx - u, 0) * u * heads * 4
    return base + attn_scores + activations, full_scores


# RAM (GB) -> recommended quantization for 7B / 13B / 33B / 70B models.
_TABLE: list[tuple[int, tuple[str | None, str | None, str | None, str | None]]] = [
    (8, ("Q4", None, None, None)),
    (16, ("Q8", "Q4", None, None)),
    (32, ("F16-Q8", "Q8", "Q4", None)),
    (64, ("F16", "F16", "Q8", "Q4")),
    (128, ("F16 or Q8", "F16 or Q8", "F16 or Q8", "F16 or Q8")),
]


def recommend_quant(ram_bytes: int, n_params: int) -> str | None:
    """The table's advice for this RAM and model size (None: not recommended at all)."""
    ram_gb = ram_bytes / 2**30
    row = None
    for gb, cols in _TABLE:
        if ram_gb >= gb * 0.9:  # "16 GB" machines report a little less
            row = cols
    if row is None:
        return None
    b = n_params / 1e9
    col = 0 if b <= 9 else 1 if b <= 20 else 2 if b <= 45 else 3
    return row[col]


def estimate(shape: ModelShape, n_ctx: int, engine: str = "llama.cpp",
             total_ram: int | None = None, available_ram: int | None = None) -> FitEstimate:
    total = total_ram if total_ram is not None else memory.total_ram_bytes()
    avail = available_ram if available_ram is not None else memory.available_ram_bytes()
    notes = []
    kv = kv_cache_bytes(shape, n_ctx)
    if kv == 0:
        notes.append("layer/head counts unknown: KV cache not included")
    compute, full_extra = compute_bytes(shape, n_ctx)
    overhead = ENGINE_OVERHEAD.get(engine, ENGINE_OVERHEAD["llama.cpp"])
    expected = overhead + shape.size_bytes + kv + compute
    worst = expected + full_extra
    verdict: Verdict
    if expected > total * 0.9:
        verdict = "wont_fit"
    elif worst <= avail * 0.8:
        verdict = "fits"
    else:
        verdict = "tight"
    return FitEstimate(engine, n_ctx, shape.size_bytes, kv, compute, overhead, expected, worst,
                       total, avail, verdict, recommend_quant(total, shape.n_params),
                       tuple(notes))


def estimate_error(estimate_bytes: int, measured_bytes: int) -> float:
    """Relative error (estimate - measured) / measured."""
    return (estimate_bytes - measured_bytes) / measured_bytes
