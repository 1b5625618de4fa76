"""The MLX engine, driven through mlx-lm. Runs inside the engine host.

mlx-lm does the work: `load` (with remote code refused), `generate_step` with
`make_sampler` / `make_logits_processors`, its streaming detokenizer and a
prompt cache from `make_prompt_cache`. We add what the app needs on top: the
chat template rendered in our sandbox, the context policy, stop strings,
cancel within one token, and keeping the cache across turns (trimmed to the
longest common prefix of the new prompt).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from macllm_app.core.engines.counters import LIVE_STATS_INTERVAL_S, GenerationCounters
from macllm_app.core.engines.prompt.stop_strings import StopMatcher, finish_stream
from macllm_app.core.engines.prompt.template import ChatTemplate
from macllm_app.core.engines.prompt.tokens import common_prefix, request_tokens
from macllm_app.core.errors import EngineError, one_line
from macllm_app.core.formats.lora_adapter import adapter_label, read_mlx_adapter
from macllm_app.core.formats.mlx_folder import validate_mlx_folder
from macllm_app.core.platform import current as current_platform
from macllm_app.core.types import (
    EngineMemory,
    Event,
    Finished,
    GenerationRequest,
    LiveStats,
    LoadConfig,
    Message,
    ModelInfo,
    ProgressCallback,
    SamplingParams,
    StopCheck,
    TextDelta,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a model folder is local; never reach the Hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import (
    can_trim_prompt_cache,
    make_prompt_cache,
    trim_prompt_cache,
)
from mlx_lm.sample_utils import make_repetition_penalty, make_sampler
from mlx_lm.utils import load as mlx_load

PENALTY_LAST_N = 64  # tokens the repeat penalty looks back over, as in the llama.cpp engine


class _PromptCancelled(Exception):
    pass


class MLXEngine:
    """One mlx-lm model and tokenizer; a prompt cache kept between requests."""

    name = "mlx"

    def __init__(self) -> None:
        self._model: Any = None
        self._tokenizer: Any = None
        self._template: ChatTemplate | None = None
        self._info: ModelInfo | None = None
        self._cache: list[Any] = []
        self._cached: list[int] = []  # tokens whose keys/values are in the cache
        self._n_ctx = 0
        self._n_vocab = 0
        self._n_batch = 512
        self._bos = ""

    # -- lifetime ---------------------------------------------------------
    def load(self, config: LoadConfig, progress: ProgressCallback) -> ModelInfo:
        """Load an MLX folder (a GGUF file runs as its MLX copy, which the caller makes
        first: see `library.loading`); the model is named after `config.source_path`
        when it is a copy."""
        folder = Path(config.model_path).expanduser()
        source = Path(config.source_path).expanduser() if config.source_path else folder
        self.unload()
        if folder.is_file():
            raise EngineError(f"MLX runs model folders; {folder.name} is a file "
                              "(a GGUF file runs on MLX through its MLX copy).")
        meta = validate_mlx_folder(folder)  # before mlx-lm reads anything
        adapter = Path(config.adapter_path).expanduser() if config.adapter_path else None
        if adapter is not None:
            read_mlx_adapter(adapter)  # an mlx-lm adapter folder, checked the same way
        progress(0.0, f"Loading {source.name}")
        try:
            loaded = mlx_load(str(folder), tokenizer_config={"trust_remote_code": False},
                              adapter_path=str(adapter) if adapter is not None else None)
            model, tokenizer = loaded[0], loaded[1]
            mx.eval(model(mx.array([[0]], dtype=mx.int32)))  # a bad config fails here, not mid-chat
        except Exception as exc:  # mlx-lm raises many kinds on a bad folder
            reason = one_line(exc, type(exc).__name__)
            raise EngineError(f"MLX could not load {folder.name}: {reason}.") from None
        progress(0.9, "Preparing the chat template")
        bos = tokenizer.bos_token or ""
        template = ChatTemplate(getattr(tokenizer, "chat_template", None), bos,
                                tokenizer.eos_token or "")
        template.render((Message("user", "Hello"),))  # fail at load, not mid-chat
        n_ctx_train = meta.context_length or config.n_ctx
        self._model, self._tokenizer, self._template, self._bos = model, tokenizer, template, bos
        self._n_ctx = min(config.n_ctx, n_ctx_train) if config.n_ctx > 0 else n_ctx_train
        self._n_vocab = meta.vocab_size or len(tokenizer)
        self._n_batch = max(32, config.n_batch)
        self._cache = make_prompt_cache(model)
        self._cached = []
        if config.expected_bytes:
            current_platform().limit_mlx_memory(config.expected_bytes)
        on_gpu = bool(mx.metal.is_available())
        self._info = ModelInfo(
            path=str(source),
            name=(source.stem if source.is_file() else source.name)
            + (f" + {adapter_label(adapter)}" if adapter is not None else ""),
            engine="mlx",
            architecture=meta.architecture,
            n_ctx=self._n_ctx,
            n_ctx_train=n_ctx_train,
            n_params=meta.n_params,
            size_bytes=meta.size_bytes,
            has_chat_template=not template.is_fallback,
            gpu_layers=(meta.n_layers or 0) if on_gpu else 0,
            device="GPU (Metal)" if on_gpu else "CPU",
        )
        progress(1.0, "Ready")
        return self._info

    def memory(self) -> EngineMemory:
        """Weights and prompt cache as mlx-lm holds them, and MLX's allocator counters
        (they only see this process, so the host reports them)."""
        if self._model is None:
            return EngineMemory()
        from mlx.utils import tree_reduce

        weights = int(tree_reduce(
            lambda total, x: total + x.nbytes if isinstance(x, mx.array) else total,
            self._model.parameters(), 0))
        kv = sum(int(getattr(layer, "nbytes", 0)) for layer in self._cache)
        active = int(mx.get_active_memory())
        on_gpu = bool(mx.metal.is_available())
        limit = mx.device_info().get("max_recommended_working_set_size", 0) if on_gpu else 0
        return EngineMemory(weights_bytes=weights, kv_cache_bytes=kv,
                            gpu_bytes=active if on_gpu else 0,
                            gpu_limit_bytes=int(limit) if isinstance(limit, int) else 0,
                            mlx_active_bytes=active, mlx_peak_bytes=int(mx.get_peak_memory()),
                            mlx_cache_bytes=int(mx.get_cache_memory()))

    def unload(self) -> None:
        self._model = self._tokenizer = self._template = self._info = None
        self._cache, self._cached = [], []
        mx.clear_cache()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def tokenize(self, text: str) -> list[int]:
        self._require()
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def _require(self) -> ModelInfo:
        if self._info is None:
            raise EngineError("No model is loaded.")
        return self._info

    # -- prompt -----------------------------------------------------------
    def _encode_text(self, text: str) -> list[int]:
        add_special = not (self._bos and text.startswith(self._bos))
        return list(self._tokenizer.encode(text, add_special_tokens=add_special))

    def _encode_chat(self, messages: Sequence[Message]) -> list[int]:
        assert self._template is not None
        return self._encode_text(self._template.render(messages))

    def _reuse_prefix(self, tokens: list[int], reuse: bool) -> int:
        """Trim the cache to the prefix it shares with `tokens`; return that length."""
        prefix = min(common_prefix(self._cached, tokens), len(tokens) - 1) if reuse else 0
        extra = len(self._cached) - prefix
        if extra > 0:
            if prefix > 0 and can_trim_prompt_cache(self._cache):
                trim_prompt_cache(self._cache, extra)
            else:
                self._cache, prefix = make_prompt_cache(self._model), 0
        del self._cached[prefix:]
        return prefix

    # -- generation -------------------------------------------------------
    def stream(self, request: GenerationRequest, should_stop: StopCheck) -> Iterator[Event]:
        info = self._require()
        started = time.perf_counter()
        tokens, dropped = request_tokens(request, self._n_ctx, self._n_vocab,
                                         self._encode_chat, self._encode_text)
        if not tokens:
            raise EngineError("The prompt is empty.")
        cached = self._reuse_prefix(tokens, request.reuse_cache)
        params = request.sampling
        if params.seed is not None:
            mx.random.seed(params.seed & 0xFFFFFFFF)
        mx.reset_peak_memory()
        max_tokens = max(0, min(params.max_tokens, self._n_ctx - len(tokens)))
        counters = GenerationCounters(started)
        generated: list[int] = []
        try:
            yield from self._generate(tokens, cached, params, max_tokens, should_stop,
                                      counters, generated)
        finally:
            self._cached = (tokens + generated)[: self._cache_length(len(tokens))]
        yield Finished(counters.stats(prompt_tokens=len(tokens), cached_tokens=cached,
                                      n_ctx=self._n_ctx, dropped=dropped, engine=self.name,
                                      model=info.name,
                                      engine_peak_bytes=int(mx.get_peak_memory())))

    def _cache_length(self, fallback: int) -> int:
        offset = getattr(self._cache[0], "offset", None) if self._cache else None
        return int(offset) if isinstance(offset, int) else fallback

    def _generate(self, tokens: list[int], cached: int, params: SamplingParams,
                  max_tokens: int, should_stop: StopCheck, counters: GenerationCounters,
                  generated: list[int]) -> Iterator[TextDelta | LiveStats]:
        if max_tokens == 0:
            counters.prompt_started = counters.prompt_done = time.perf_counter()
            return
        steps = cast("Generator[tuple[int, Any], None, None]", generate_step(
            mx.array(tokens[cached:]), self._model,
            max_tokens=max_tokens,
            sampler=make_sampler(params.temperature, top_p=params.top_p, min_p=params.min_p,
                                 top_k=params.top_k),
            logits_processors=self._penalty(params, tokens[:cached]),
            prompt_cache=self._cache,
            prefill_step_size=self._n_batch,
            prompt_progress_callback=self._prompt_check(should_stop),
        ))
        eos = () if params.ignore_eos else self._tokenizer.eos_token_ids
        detokenizer = self._tokenizer.detokenizer
        stops = StopMatcher(params.stop) if params.stop else None
        clock = time.perf_counter
        counters.prompt_started = clock()
        live_at = 0.0
        try:
            for token, _logprobs in steps:
                now = clock()
                if not generated:
                    counters.prompt_done = now
                generated.append(token)
                if token in eos:
                    counters.finish = "stop"
                    break
                counters.generated += 1
                counters.last = now
                if counters.generated == 1:
                    counters.first = now
                    live_at = now + LIVE_STATS_INTERVAL_S
                elif now >= live_at:
                    live_at = now + LIVE_STATS_INTERVAL_S
                    yield counters.live()
                detokenizer.add_token(token)
                text = detokenizer.last_segment
                if stops is not None:
                    text = stops.feed(text)
                    if stops.stopped:
                        counters.finish = "stop"
                        yield TextDelta(text, (token,))
                        return
                yield TextDelta(text, (token,))
                if should_stop():
                    counters.finish = "cancelled"
                    break
        except _PromptCancelled:
            counters.finish = "cancelled"
            counters.prompt_done = clock()
            return
        finally:
            steps.close()
        detokenizer.finalize()
        tail, matched = finish_stream(stops, detokenizer.last_segment)
        if matched:
            counters.finish = "stop"
        if tail:
            yield TextDelta(tail, ())

    @staticmethod
    def _prompt_check(should_stop: StopCheck) -> Any:
        def check(done: int, total: int) -> None:
            if done < total and should_stop():
                raise _PromptCancelled
        return check

    @staticmethod
    def _penalty(params: SamplingParams, history: list[int]) -> list[Any] | None:
        """The repeat penalty over the last tokens, including those already in the cache
        (mlx-lm only sees the tokens of this call)."""
        if params.repeat_penalty == 1.0:
            return None
        penalty = make_repetition_penalty(params.repeat_penalty, PENALTY_LAST_N)
        earlier = mx.array(history[-PENALTY_LAST_N:], dtype=mx.int32)

        def with_history(tokens: Any, logits: Any) -> Any:
            return penalty(mx.concatenate([earlier, tokens.astype(mx.int32)]), logits)
        return [with_history]

