"""Requests, settings and events shared by every engine, the host, the CLI and the GUI.

All of these are plain, picklable dataclasses: they cross the pipe to the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EngineName = Literal["llama.cpp", "mlx"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # generate max_tokens whatever the model says (benchmarks)

    @classmethod
    def greedy(cls, max_tokens: int = 512, seed: int | None = 0) -> SamplingParams:
        return cls(temperature=0.0, top_p=1.0, top_k=1, min_p=0.0, repeat_penalty=1.0,
                   seed=seed, max_tokens=max_tokens)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """How to load a model. `n_gpu_layers=-1` offloads every layer where a GPU exists."""

    model_path: str
    engine: EngineName = "llama.cpp"
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = -1
    chat_template: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """`messages` (rendered with the model's chat template), a raw `prompt`, or
    `prompt_tokens` (token ids, as OpenAI-style completion APIs accept)."""

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    prompt_tokens: tuple[int, ...] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    reuse_cache: bool = True


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: str
    name: str
    engine: EngineName
    architecture: str
    n_ctx: int
    n_ctx_train: int
    n_params: int
    size_bytes: int
    has_chat_template: bool
    gpu_layers: int
    device: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text and the token ids that produced it (several when batched)."""

    text: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class GenerationStats:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    ttft_s: float = 0.0
    prompt_tps: float = 0.0
    decode_tps: float = 0.0
    peak_rss_bytes: int = 0
    engine_peak_bytes: int = 0  # the engine's own accounting (MLX: mx.get_peak_memory)
    finish_reason: FinishReason = "stop"
    n_ctx: int = 0
    dropped_messages: int = 0
    engine: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class Finished:
    stats: GenerationStats


@dataclass(frozen=True, slots=True)
class LoadProgress:
    fraction: float
    message: str = ""


Event = TextDelta | Finished
