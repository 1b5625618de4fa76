"""How much quality a quantized model lost: perplexity and KL divergence against its
source, computed the way `llama-perplexity --kl-divergence` computes them.

The evaluation text is tokenized once (by the base model's tokenizer, so a model and
its variants see the same tokens) and cut into chunks of `n_ctx` tokens (512); each
chunk is evaluated from an empty cache, its first token replaced by BOS where the
model adds one, and the second half of it is scored: the negative log-likelihood of
each next token (perplexity), the KL divergence of the model's next-token
distribution from the base's, and whether both put the same token on top. GGUF
files run on llama.cpp and MLX folders on MLX, so both engines' variants land in
one table. It runs as a job (`EVALUATE_TARGET`): it loads native engines.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from macllm_app.core.errors import Cancelled, UserError
from macllm_app.core.resources import EVALUATION_TEXT, read_text
from macllm_app.core.types import ProgressCallback, StopCheck

EVALUATE_TARGET = f"{__name__}:evaluate"
EVALUATE_TITLE = "Measuring quality"
N_CTX = 512
QUICK_CHUNKS = 2
DECODE_TOKENS, DECODE_TOKENS_QUICK = 64, 16

Logits = Callable[[list[int]], np.ndarray]


@dataclass(frozen=True, slots=True)
class QualityReport:
    """One row of the quality table (the base's own perplexity beside it)."""

    model: str
    base: str | None
    engine: str
    chunks: int
    tokens_scored: int
    ppl: float
    base_ppl: float | None = None
    delta_ppl: float | None = None
    kld_mean: float | None = None
    kld_p99: float | None = None
    same_top: float | None = None     # share of tokens whose top choice is the base's
    seconds: float = 0.0
    decode_tps: float | None = None   # one token at a time, from an empty cache
    prefill_tps: float | None = None  # the scored chunks, 512 tokens a batch
    memory_bytes: int | None = None   # what loading and running it added to the process

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def engine_of(path: Path) -> str:
    return "mlx" if path.is_dir() else "llama.cpp"


class _LlamaModel:
    def __init__(self, path: Path, threads: int) -> None:
        from macllm_app.core.quantize.llama_logits import SEQUENCES, LlamaLogits

        self.engine = LlamaLogits(path, N_CTX, threads)
        self.bos = self.engine.bos
        self.batch = SEQUENCES

    def tokenize(self, text: str) -> list[int]:
        return self.engine.tokenize(text)

    def scored(self, chunks: list[list[int]], first: int) -> list[np.ndarray]:
        return self.engine.scored_logits(chunks, first)

    def decode(self, tokens: list[int]) -> None:
        self.engine.decode_one_by_one(tokens)


class _MLXModel:
    batch = 1

    def __init__(self, path: Path) -> None:
        from mlx_lm.utils import load

        self.model, self.tokenizer = load(str(path), tokenizer_config={
            "trust_remote_code": False})[:2]
        self.bos = self.tokenizer.bos_token_id if getattr(
            self.tokenizer, "add_bos_token", False) else None

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def scored(self, chunks: list[list[int]], first: int) -> list[np.ndarray]:
        import mlx.core as mx

        return [np.array(self.model(mx.array([chunk]))[0, first:].astype(mx.float32))
                for chunk in chunks]

    def decode(self, tokens: list[int]) -> None:
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache

        cache = make_prompt_cache(self.model)
        for token in tokens:
            mx.eval(self.model(mx.array([[token]]), cache=cache))


def _open(path: Path, threads: int) -> _LlamaModel | _MLXModel:
    return _MLXModel(path) if path.is_dir() else _LlamaModel(path, threads)


def chunks_of(tokens: list[int], n_ctx: int, bos: int | None,
              max_chunks: int | None = None) -> Iterator[list[int]]:
    """Whole chunks of `n_ctx` tokens, each starting with BOS where the model adds one."""
    count = len(tokens) // n_ctx
    if max_chunks:
        count = min(count, max_chunks)
    for index in range(count):
        chunk = tokens[index * n_ctx:(index + 1) * n_ctx]
        if bos is not None:
            chunk[0] = bos
        yield chunk


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    rows = logits.astype(np.float64)
    rows -= rows.max(axis=-1, keepdims=True)
    return rows - np.log(np.exp(rows).sum(axis=-1, keepdims=True))


@dataclass
class _Scores:
    nll: list[float]
    base_nll: list[float]
    kld: list[float]
    same: int = 0


def score_chunk(chunk: list[int], logits: np.ndarray, base_logits: np.ndarray | None,
                scores: _Scores) -> None:
    """Score the second half of a chunk. `logits` (and `base_logits`) hold the rows of
    positions first..n-1; rows first..n-2 predict tokens first+1..n-1."""
    first = len(chunk) // 2
    targets = np.array(chunk[first + 1:])
    rows = np.arange(len(targets))
    if base_logits is None:  # the NLL alone: no full log-softmax table in float64
        scored = logits[:-1]
        top = scored.max(axis=-1, keepdims=True)
        log_z = np.log(np.exp(scored - top).sum(axis=-1, dtype=np.float64)) + top[:, 0]
        scores.nll.extend((log_z - scored[rows, targets]).tolist())
        return
    mine = _log_softmax(logits[:-1])
    scores.nll.extend((-mine[rows, targets]).tolist())
    theirs = _log_softmax(base_logits[:-1])
    scores.base_nll.extend((-theirs[rows, targets]).tolist())
    scores.kld.extend((np.exp(theirs) * (theirs - mine)).sum(axis=-1).tolist())
    scores.same += int((mine.argmax(-1) == theirs.argmax(-1)).sum())


def evaluate(model: str, base: str | None = None, text: str | None = None,
             quick: bool = False, threads: int = 0,
             progress: ProgressCallback | None = None,
             should_stop: StopCheck | None = None, speed: bool = True) -> dict[str, Any]:
    """The job: a `QualityReport` (as a dict) for `model` against `base`; without
    `speed`, no decode-speed and memory measurement (perplexity alone)."""
    report = progress or (lambda _f, _m: None)
    started = time.perf_counter()
    source = text if text is not None else read_text(EVALUATION_TEXT)
    model_path = Path(model)
    base_path = Path(base) if base else None
    report(0.0, f"Loading {model_path.name}")
    before = _rss()
    variant = _open(model_path, threads)
    decode_tps: float | None = None
    if speed:
        steps = variant.tokenize(source[:4000])[:DECODE_TOKENS_QUICK if quick
                                                 else DECODE_TOKENS]
        began = time.perf_counter()
        variant.decode(steps)
        decode_tps = len(steps) / (time.perf_counter() - began)
    memory = _rss() - before
    reference = _open(base_path, threads) if base_path is not None else None
    tokenizer = reference or variant
    tokens = tokenizer.tokenize(source)
    chunks = list(chunks_of(tokens, N_CTX, tokenizer.bos, QUICK_CHUNKS if quick else None))
    if not chunks:
        raise UserError(f"The evaluation text is too short for one chunk of {N_CTX} tokens "
                        f"({len(tokens)} tokens).")
    scores = _Scores([], [], [])
    prefill_s = 0.0
    first = N_CTX // 2
    for start in range(0, len(chunks), variant.batch):
        if should_stop is not None and should_stop():
            raise Cancelled
        group = chunks[start:start + variant.batch]
        base_rows: list[np.ndarray | None] = [None] * len(group)
        if reference is not None:
            base_rows = [row for part in range(0, len(group), reference.batch)
                         for row in reference.scored(group[part:part + reference.batch],
                                                     first)]
        began = time.perf_counter()
        rows = variant.scored(group, first)
        prefill_s += time.perf_counter() - began
        for chunk, mine, theirs in zip(group, rows, base_rows, strict=True):
            score_chunk(chunk, mine, theirs, scores)
        done = start + len(group)
        report(done / len(chunks), f"chunk {done} of {len(chunks)}")
    speeds = {"decode_tps": decode_tps, "prefill_tps": len(chunks) * N_CTX / prefill_s,
              "memory_bytes": memory if speed else None}
    return {**_report(model_path, base_path, len(chunks), scores,
                      time.perf_counter() - started).to_dict(), **speeds}


def _rss() -> int:
    from macllm_app.core.platform.memory import current_rss_bytes

    return current_rss_bytes(os.getpid())


def _report(model: Path, base: Path | None, chunks: int, scores: _Scores,
            seconds: float) -> QualityReport:
    ppl = math.exp(float(np.mean(scores.nll)))
    if base is None:
        return QualityReport(str(model), None, engine_of(model), chunks, len(scores.nll), ppl,
                             seconds=seconds)
    base_ppl = math.exp(float(np.mean(scores.base_nll)))
    kld = np.array(scores.kld)
    return QualityReport(str(model), str(base), engine_of(model), chunks, len(scores.nll), ppl,
                         base_ppl=base_ppl, delta_ppl=ppl - base_ppl,
                         kld_mean=float(kld.mean()), kld_p99=float(np.percentile(kld, 99)),
                         same_top=scores.same / len(kld), seconds=seconds)
