"""The llama.cpp engine, driven through llama-cpp-python's low-level bindings.

Runs inside the engine host. Sampling happens in llama.cpp's native sampler
chain; the per-token loop makes two native calls (sample, decode) on reused
ctypes buffers and reads token text from a memo, so its Python cost stays at a
few microseconds.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import llama_cpp.llama_cpp as lc

from macllm_app.core.engines.counters import LIVE_STATS_INTERVAL_S, GenerationCounters
from macllm_app.core.engines.llamacpp_native import (
    PENALTY_LAST_N,
    GreedyPicker,
    build_sampler,
    init_backend,
    meta_string,
    native_log,
    physical_cores,
    token_text,
    tokenize,
)
from macllm_app.core.engines.llamacpp_pieces import END_OF_GENERATION, StreamText, TokenPieces
from macllm_app.core.engines.llamacpp_threadpool import ThreadPool
from macllm_app.core.engines.prompt.stop_strings import StopMatcher, finish_stream
from macllm_app.core.engines.prompt.template import ChatTemplate
from macllm_app.core.engines.prompt.tokens import common_prefix, request_tokens
from macllm_app.core.errors import EngineError
from macllm_app.core.formats.inspect import check_gguf_file
from macllm_app.core.formats.lora_adapter import adapter_label, check_lora_gguf
from macllm_app.core.types import (
    EngineMemory,
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    LiveStats,
    LoadConfig,
    Message,
    ModelInfo,
    ProgressCallback,
    StopCheck,
    TextDelta,
)

_DECODE_NO_KV_SLOT = 1
KV_BYTES = 2  # llama.cpp keeps keys and values in f16 by default


class LlamaCppEngine:
    """One GGUF model and its context; a KV cache that persists between requests."""

    name = "llama.cpp"

    def __init__(self) -> None:
        self._model: Any = None
        self._ctx: Any = None
        self._adapter: Any = None
        self._vocab: Any = None
        self._memory: Any = None
        self._info: ModelInfo | None = None
        self._template: ChatTemplate | None = None
        self._n_ctx = 0
        self._n_batch = 0
        self._n_vocab = 0
        self._bos_text = ""
        self._add_bos = False
        self._cached: list[int] = []  # tokens whose keys/values are in the context
        self._pieces: TokenPieces | None = None
        self._one_token = (lc.llama_token * 1)()
        self._one_batch = lc.llama_batch_get_one(self._one_token, 1)
        self._progress_handle: Any = None
        self._pool: ThreadPool | None = None
        self._memory_report = EngineMemory()

    # -- lifetime ---------------------------------------------------------
    def load(self, config: LoadConfig, progress: ProgressCallback) -> ModelInfo:
        path = Path(config.model_path).expanduser()
        header = check_gguf_file(path)  # the library's check, before llama.cpp sees the file
        if config.adapter_path:  # checked against this model as llama.cpp will check it
            check_lora_gguf(Path(config.adapter_path).expanduser(), header)
        init_backend()
        self.unload()
        progress(0.0, f"Loading {path.name}")
        try:
            return self._load(path, config, progress)
        except BaseException:
            self.unload()
            raise

    def _load(self, path: Path, config: LoadConfig, progress: ProgressCallback) -> ModelInfo:
        gpu = bool(lc.llama_supports_gpu_offload())
        mparams = lc.llama_model_default_params()
        mparams.n_gpu_layers = config.n_gpu_layers if gpu else 0
        mparams.progress_callback = self._progress_relay(progress)
        native_log.clear()
        self._model = lc.llama_model_load_from_file(str(path).encode("utf-8"), mparams)
        self._progress_handle = None
        if not self._model:
            reason = native_log.first_error("unsupported or corrupt model")
            raise EngineError(f"llama.cpp could not load {path.name}: {reason}.")
        model = self._model
        self._vocab = lc.llama_model_get_vocab(model)
        self._n_vocab = lc.llama_vocab_n_tokens(self._vocab)
        self._pieces = TokenPieces(self._vocab, self._n_vocab)

        progress(0.95, "Creating the context")
        threads = config.n_threads or physical_cores()
        self._ctx = lc.llama_init_from_model(model, self._context_params(config, threads))
        if not self._ctx:
            reason = native_log.first_error("not enough memory?")
            raise EngineError(f"llama.cpp could not create a context for {path.name}: {reason}.")
        if config.adapter_path:
            self._apply_adapter(Path(config.adapter_path).expanduser())
        self._pool = ThreadPool.attach(self._ctx, threads)
        self._memory = lc.llama_get_memory(self._ctx)
        self._n_ctx = lc.llama_n_ctx(self._ctx)
        self._n_batch = lc.llama_n_batch(self._ctx)

        eos_text = token_text(self._vocab, lc.llama_vocab_eos(self._vocab))
        self._bos_text = token_text(self._vocab, lc.llama_vocab_bos(self._vocab))
        self._add_bos = bool(lc.llama_vocab_get_add_bos(self._vocab))
        gguf_template = meta_string(model, "tokenizer.chat_template")
        self._template = ChatTemplate(config.chat_template or gguf_template,
                                      self._bos_text, eos_text)
        self._template.render((Message("user", "Hello"),))  # fail at load, not mid-chat

        n_layer = lc.llama_model_n_layer(model)
        gpu_layers = 0
        if gpu:
            gpu_layers = n_layer if config.n_gpu_layers < 0 else min(config.n_gpu_layers, n_layer)
        self._memory_report = self._measure(model, n_layer, gpu_layers)
        device = "CPU"
        if gpu_layers:
            device = "GPU (Metal)" if sys.platform == "darwin" else "GPU"
        self._info = ModelInfo(
            path=str(path),
            name=path.stem + (f" + {adapter_label(config.adapter_path)}"
                              if config.adapter_path else ""),
            engine="llama.cpp",
            architecture=meta_string(model, "general.architecture") or "unknown",
            n_ctx=self._n_ctx,
            n_ctx_train=lc.llama_model_n_ctx_train(model),
            n_params=lc.llama_model_n_params(model),
            size_bytes=path.stat().st_size,
            has_chat_template=bool(config.chat_template or gguf_template),
            gpu_layers=gpu_layers,
            device=device,
        )
        progress(1.0, "Ready")
        return self._info

    def _context_params(self, config: LoadConfig, threads: int) -> Any:
        """The llama.cpp context parameters for `config` (one sequence)."""
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = max(config.n_ctx, 0)
        n_batch = min(config.n_batch, config.n_ctx) if config.n_ctx > 0 else config.n_batch
        cparams.n_batch = cparams.n_ubatch = max(1, n_batch)
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        return cparams

    def _apply_adapter(self, path: Path) -> None:
        """Load a LoRA adapter GGUF (checked by `check_lora_gguf`) onto the model and
        apply it at full strength in the context."""
        native_log.clear()
        self._adapter = lc.llama_adapter_lora_init(self._model, str(path).encode("utf-8"))
        if not self._adapter:
            reason = native_log.first_error("not a LoRA adapter for this model")
            raise EngineError(f"llama.cpp could not load the adapter {path.name}: {reason}.")
        adapters = (lc.llama_adapter_lora_p_ctypes * 1)(self._adapter)
        scales = (ctypes.c_float * 1)(1.0)
        if lc.llama_set_adapters_lora(self._ctx, adapters, 1, scales) != 0:
            raise EngineError(f"llama.cpp could not apply the adapter {path.name}.")

    def _measure(self, model: Any, n_layer: int, gpu_layers: int) -> EngineMemory:
        """Weights (llama.cpp's own count), the f16 KV cache of the whole context, and the
        offloaded layers' share of the weights."""
        weights = int(lc.llama_model_size(model))
        n_head = max(1, lc.llama_model_n_head(model))
        head_dim = lc.llama_model_n_embd(model) // n_head
        kv = 2 * n_layer * self._n_ctx * lc.llama_model_n_head_kv(model) * head_dim * KV_BYTES
        gpu = weights * gpu_layers // n_layer if n_layer else 0
        return EngineMemory(weights_bytes=weights, kv_cache_bytes=kv, gpu_bytes=gpu)

    def memory(self) -> EngineMemory:
        return self._memory_report

    def _progress_relay(self, progress: ProgressCallback) -> Any:
        last = [0.0]

        def relay(fraction: float, _user_data: Any) -> bool:
            try:
                if fraction - last[0] >= 0.02 or fraction >= 1.0:
                    last[0] = fraction
                    progress(0.9 * fraction, "Loading weights")
            except Exception:  # raising here would abort the load
                native_log.errors.append("the progress report failed")
            return True

        self._progress_handle = lc.llama_progress_callback(relay)
        return self._progress_handle

    def unload(self) -> None:
        if self._pool is not None:
            self._pool.free(self._ctx)
            self._pool = None
        if self._ctx:
            lc.llama_free(self._ctx)
        if self._adapter:
            lc.llama_adapter_lora_free(self._adapter)
        if self._model:
            lc.llama_model_free(self._model)
        self._ctx = self._model = self._adapter = self._vocab = self._memory = None
        self._info = self._template = self._pieces = None
        self._cached = []
        self._memory_report = EngineMemory()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def tokenize(self, text: str) -> list[int]:
        self._require()
        return tokenize(self._vocab, text, add_special=False)

    def _require(self) -> ModelInfo:
        if self._info is None:
            raise EngineError("No model is loaded.")
        return self._info

    # -- prompt -----------------------------------------------------------
    def _encode_chat(self, messages: Sequence[Message]) -> list[int]:
        assert self._template is not None
        text = self._template.render(messages)
        add_bos = self._add_bos and not (self._bos_text and text.startswith(self._bos_text))
        return tokenize(self._vocab, text, add_special=add_bos)

    def _prompt_tokens(self, request: GenerationRequest) -> tuple[list[int], int]:
        """Prompt tokens and how many old messages were dropped to fit the window."""
        return request_tokens(
            request, self._n_ctx, self._n_vocab, self._encode_chat,
            lambda text: tokenize(self._vocab, text, add_special=self._add_bos),
        )

    def _reuse_prefix(self, tokens: list[int], reuse: bool) -> int:
        """Keep the cached prefix shared with `tokens`; return its length."""
        cached = self._cached
        prefix = 0
        if reuse:
            # the last prompt token must be evaluated again: it yields the logits
            prefix = min(common_prefix(cached, tokens), len(tokens) - 1)
        if prefix < len(cached) and not lc.llama_memory_seq_rm(self._memory, -1, prefix, -1):
            prefix = 0
        if prefix == 0:
            lc.llama_memory_clear(self._memory, False)
        del cached[prefix:]
        return prefix

    def _evaluate(self, tokens: list[int], start: int, should_stop: StopCheck) -> bool:
        """Decode tokens[start:] in n_batch chunks; False if cancelled in between."""
        for begin in range(start, len(tokens), self._n_batch):
            chunk = tokens[begin:begin + self._n_batch]
            array = (lc.llama_token * len(chunk))(*chunk)
            code = lc.llama_decode(self._ctx, lc.llama_batch_get_one(array, len(chunk)))
            if code != 0:
                self._reset_cache()
                raise EngineError(f"llama.cpp could not evaluate the prompt (error {code}).")
            self._cached.extend(chunk)
            if begin + len(chunk) < len(tokens) and should_stop():
                return False
        return True

    def _reset_cache(self) -> None:
        self._cached = []
        if self._memory:
            lc.llama_memory_clear(self._memory, False)

    # -- generation -------------------------------------------------------
    def stream(self, request: GenerationRequest, should_stop: StopCheck) -> Iterator[Event]:
        info = self._require()
        started = time.perf_counter()
        tokens, dropped = self._prompt_tokens(request)
        if not tokens:
            raise EngineError("The prompt is empty.")
        cached = self._reuse_prefix(tokens, request.reuse_cache)
        params = request.sampling
        seed = lc.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
        sampler = build_sampler(params, seed, self._n_vocab)
        try:
            if params.repeat_penalty != 1.0:
                for token in tokens[-PENALTY_LAST_N:]:  # the penalty also covers the prompt
                    lc.llama_sampler_accept(sampler, token)
            stats = GenerationCounters(started)
            stats.prompt_started = time.perf_counter()
            finished = self._evaluate(tokens, cached, should_stop)
            stats.prompt_done = time.perf_counter()
            if finished:
                greedy = params.temperature <= 0.0 and params.repeat_penalty == 1.0
                yield from self._decode_loop(sampler, params.max_tokens, params.stop,
                                             should_stop, stats, greedy, params.ignore_eos)
            else:
                stats.finish = "cancelled"
        finally:
            lc.llama_sampler_free(sampler)
        yield Finished(stats.stats(prompt_tokens=len(tokens), cached_tokens=cached,
                                   n_ctx=self._n_ctx, dropped=dropped, engine=self.name,
                                   model=info.name))

    def _decode_loop(self, sampler: Any, max_tokens: int, stop: Sequence[str],
                     should_stop: StopCheck, stats: GenerationCounters,
                     greedy: bool, ignore_eos: bool) -> Iterator[TextDelta | LiveStats]:
        """Sample, detokenize and feed back one token at a time (the hot loop)."""
        assert self._pieces is not None
        decode = lc.llama_decode
        ctx, batch, slot = self._ctx, self._one_batch, self._one_token
        pick = GreedyPicker(ctx, self._n_vocab) if greedy else None
        native_sample = lc.llama_sampler_sample
        entries, lookup = self._pieces.entries, self._pieces.lookup
        stream_text = StreamText()
        stops = StopMatcher(stop) if stop else None
        cached, n_ctx, clock = self._cached, self._n_ctx, time.perf_counter
        generated = 0
        live_at = 0.0
        finish: FinishReason = "length"
        while generated < max_tokens:
            token = pick() if pick is not None else native_sample(sampler, ctx, -1)
            entry = entries[token]
            if entry is None:
                entry = lookup(token)
            if entry is END_OF_GENERATION:
                if not ignore_eos:
                    finish = "stop"
                    break
                entry = ""
            if type(entry) is str and not stream_text.partial:
                text = entry
            else:
                assert isinstance(entry, str | bytes)
                text = stream_text.feed(entry)
            generated += 1
            stats.last = now = clock()
            stats.generated = generated
            if generated == 1:
                stats.first = now
                live_at = now + LIVE_STATS_INTERVAL_S
            elif now >= live_at:
                live_at = now + LIVE_STATS_INTERVAL_S
                yield stats.live()
            if stops is not None:
                text = stops.feed(text)
                if stops.stopped:
                    yield TextDelta(text, (token,))
                    finish = "stop"
                    break
            yield TextDelta(text, (token,))
            if should_stop():
                finish = "cancelled"
                break
            if generated >= max_tokens or len(cached) >= n_ctx:
                break
            slot[0] = token
            code = decode(ctx, batch)
            if code != 0:
                if code == _DECODE_NO_KV_SLOT:
                    break
                self._reset_cache()
                raise EngineError(f"llama.cpp failed while generating (error {code}).")
            cached.append(token)
        stats.finish = finish
        tail, matched = finish_stream(stops, stream_text.close())
        if matched:
            stats.finish = "stop"
        if tail:
            yield TextDelta(tail, ())

