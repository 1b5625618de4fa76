"""The shared vocabulary: every layer of the app speaks in these names.

Messages and roles, sampling, requests, the events an engine streams and the
stats it ends with, engine names, load settings and what a loaded model is.
The dataclasses are plain and picklable: they cross the pipe to the engine
host as themselves. This module imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

EngineName = Literal["llama.cpp", "mlx"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
Role = Literal["system", "user", "assistant"]

ENGINES: tuple[EngineName, ...] = ("llama.cpp", "mlx")
"""Every engine, in the order menus list them."""
ENGINE_TITLES: dict[EngineName, str] = {"llama.cpp": "llama.cpp", "mlx": "MLX"}

ProgressCallback = Callable[[float, str], None]
"""`progress(fraction, message)`: fraction from 0 to 1, message in plain words."""
StopCheck = Callable[[], bool]
"""`should_stop()`: polled by long work; True asks it to stop at its next step."""


def engine_named(name: object) -> EngineName | None:
    """`name` as an engine name, or None if it names no engine."""
    return next((engine for engine in ENGINES if engine == name), None)


def engine_title(engine: str | None) -> str:
    """How the app names an engine ("MLX", "llama.cpp"); unknown names pass through."""
    named = engine_named(engine)
    return ENGINE_TITLES[named] if named is not None else (engine or "")


def other_engine(engine: str) -> EngineName:
    """The engine that is not `engine`."""
    return next(e for e in ENGINES if e != engine)


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
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: bool = False  # report each generated token's log-probability
    top_logprobs: int = 0  # ... and this many most likely alternatives
    json_schema: str | None = None  # constrain the reply to this JSON schema (JSON text)

    @classmethod
    def greedy(cls, max_tokens: int = 512, seed: int | None = 0) -> SamplingParams:
        return cls(temperature=0.0, top_p=1.0, top_k=1, min_p=0.0, repeat_penalty=1.0,
                   seed=seed, max_tokens=max_tokens)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """How to load a model. `n_gpu_layers=-1` offloads every layer where a GPU exists.

    `source_path` is set when the engine runs a prepared form of the model the
    user chose (a GGUF file's MLX copy): the model is shown under its name.
    `expected_bytes` is the library's estimate of the loaded model's memory,
    from which the MLX engine sets Metal's wired-memory limit on a Mac.
    `adapter_path` is a LoRA adapter applied on top of the model: a LoRA adapter
    GGUF for llama.cpp, an mlx-lm adapter folder for MLX.
    """

    model_path: str
    engine: EngineName = "llama.cpp"
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = -1
    chat_template: str | None = None
    source_path: str | None = None
    expected_bytes: int | None = None
    adapter_path: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """`messages` (rendered with the model's chat template), a raw `prompt`, or
    `prompt_tokens` (token ids, as OpenAI-style completion APIs accept)."""

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    prompt_tokens: tuple[int, ...] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    reuse_cache: bool = True
    #: OpenAI-style message dicts (tool calls, tool results), rendered instead of `messages`
    raw_messages: tuple[dict[str, Any], ...] = ()
    #: OpenAI-style tool (function) descriptions handed to the chat template
    tools: tuple[dict[str, Any], ...] = ()


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
class TokenLogprob:
    """One generated token's text (as bytes may not be whole UTF-8), its log-probability,
    and the most likely alternatives at that step as (text, log-probability) pairs."""

    text: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text and the token ids that produced it (several when batched); `logprobs`
    has one entry per token id when the request asked for them."""

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...] = ()


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

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GenerationStats | None:
        """Stats stored as a dict (a chat reply's), or None; unknown keys are ignored."""
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True, slots=True)
class LiveStats:
    """A generation's speed while it runs, from the engine's own counters (a few a second)."""

    generated_tokens: int
    decode_tps: float
    ttft_s: float


@dataclass(frozen=True, slots=True)
class EngineMemory:
    """What a loaded model costs, as its engine counts it (0 where an engine has no such
    figure, or no model is loaded)."""

    weights_bytes: int = 0
    kv_cache_bytes: int = 0
    gpu_bytes: int = 0         # on the GPU: llama.cpp's offloaded layers, MLX's Metal memory
    gpu_limit_bytes: int = 0   # Metal's recommended working set (MLX on a Mac)
    mlx_active_bytes: int = 0  # `mx.get_active_memory()` and friends (MLX only)
    mlx_peak_bytes: int = 0
    mlx_cache_bytes: int = 0


@dataclass(frozen=True, slots=True)
class HostMemory:
    """The engine host process's memory, as it measures itself, and its engine's."""

    rss_bytes: int
    peak_rss_bytes: int
    engine: EngineMemory = field(default_factory=EngineMemory)


@dataclass(frozen=True, slots=True)
class Finished:
    stats: GenerationStats


Event = TextDelta | LiveStats | Finished
