"""llama.cpp serving several requests at once: sequences decoded together in one context.

Like llama-server's `--parallel` slots: the context holds `parallel` sequences
(one KV stream each, `n_ctx` tokens per slot), and each step is ONE
`llama_decode` of a batch that carries the next token of every generating slot
plus prompt chunks of newly admitted requests (up to n_batch tokens in all).
Logits are asked for only where a token will be sampled. Each slot has its own
sampler chain (penalties, top-k/top-p/min-p, temperature, seeded dist; greedy
slots take a numpy argmax over their logits rows instead), an optional JSON
schema grammar, stop strings, log-probabilities, and keeps its KV cache after a
request ends, so a new request goes to the free slot that shares the longest
prefix with its prompt.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import llama_cpp.llama_cpp as lc
import numpy as np

from macllm_app.core.engines.counters import LIVE_STATS_INTERVAL_S, GenerationCounters
from macllm_app.core.engines.llamacpp import LlamaCppEngine
from macllm_app.core.engines.llamacpp_embeddings import Embedder
from macllm_app.core.engines.llamacpp_native import (
    PENALTY_LAST_N,
    build_sampler,
    has_penalties,
    json_schema_sampler,
    tokenize,
)
from macllm_app.core.engines.llamacpp_pieces import END_OF_GENERATION, StreamText
from macllm_app.core.engines.prompt.stop_strings import StopMatcher, finish_stream
from macllm_app.core.engines.prompt.tokens import common_prefix
from macllm_app.core.engines.slot_engine import StepItem
from macllm_app.core.errors import EngineError, UserError
from macllm_app.core.types import (
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationStats,
    LoadConfig,
    ModelInfo,
    ProgressCallback,
    SamplingParams,
    TextDelta,
    TokenLogprob,
)

_DECODE_NO_KV_SLOT = 1
MAX_TOP_LOGPROBS = 20

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
assert _TOKEN_DATA.itemsize == ctypes.sizeof(lc.llama_token_data)


class _Slot:
    """One sequence of the context and the request it serves (request_id 0: free)."""

    __slots__ = ("batch_index", "cached", "cancelled", "chunk", "counters", "generated",
                 "grammar",
                 "greedy", "ignore_eos", "live_at", "max_tokens", "n_reused", "pending",
                 "prompt", "request_id", "row", "sampler", "seq", "stops", "text", "top_n",
                 "want_logprobs")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.cached: list[int] = []  # tokens whose keys/values this sequence holds
        self.request_id = 0
        self.sampler: Any = None
        self.grammar: Any = None

    def start(self, request_id: int, prompt: list[int], params: SamplingParams, sampler: Any,
              grammar: Any, counters: GenerationCounters) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.sampler, self.grammar = sampler, grammar
        self.greedy = (params.temperature <= 0.0 and not has_penalties(params)
                       and grammar is None)
        self.max_tokens = params.max_tokens
        self.ignore_eos = params.ignore_eos and grammar is None  # JSON ends where it ends
        self.want_logprobs = params.logprobs or params.top_logprobs > 0
        self.top_n = min(max(params.top_logprobs, 0), MAX_TOP_LOGPROBS)
        self.stops = StopMatcher(params.stop) if params.stop else None
        self.text = StreamText()
        self.counters = counters
        self.generated = 0
        self.pending = -1  # the sampled token to feed at the next step
        self.row = self.batch_index = -1
        self.chunk = 0  # prompt tokens in this step's batch
        self.cancelled = False
        self.live_at = 0.0
        self.n_reused = 0

    def release(self) -> None:
        if self.sampler is not None:
            lc.llama_sampler_free(self.sampler)
        if self.grammar is not None:
            lc.llama_sampler_free(self.grammar)
        self.sampler = self.grammar = None
        self.request_id = 0


class _Batch:
    """A llama_batch over numpy arrays (one sequence id per token), filled in bulk."""

    def __init__(self, capacity: int) -> None:
        self.token = np.zeros(capacity, np.int32)
        self.pos = np.zeros(capacity, np.int32)
        self.seq = np.zeros(capacity, np.int32)
        self.logits = np.zeros(capacity, np.int8)
        self._n_seq = np.ones(capacity, np.int32)
        seq_type = ctypes.POINTER(lc.llama_seq_id)
        base, size = self.seq.ctypes.data, self.seq.itemsize
        self._seq_ptrs = (seq_type * capacity)(
            *(ctypes.cast(base + i * size, seq_type) for i in range(capacity)))
        self.native = lc.llama_batch(
            n_tokens=0,
            token=self.token.ctypes.data_as(ctypes.POINTER(lc.llama_token)),
            embd=None,
            pos=self.pos.ctypes.data_as(ctypes.POINTER(lc.llama_pos)),
            n_seq_id=self._n_seq.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
            seq_id=self._seq_ptrs,
            logits=self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )


class LlamaCppSlots(LlamaCppEngine):
    """The llama.cpp engine with `parallel` slots stepped together."""

    def __init__(self) -> None:
        super().__init__()
        self._parallel = 1
        self._slot_ctx = 0
        self._slots: list[_Slot] = []
        self._queue: deque[tuple[int, GenerationRequest, float]] = deque()
        self._active: list[_Slot] = []
        self._out: list[StepItem] = []
        self._batch: _Batch | None = None
        self._embedder: Embedder | None = None
        self._candidates: Any = None
        self._single = lc.llama_token_data()
        self._logits_key: tuple[int | None, int] = (None, 0)
        self._logits_view: Any = None
        self._token_ids: Any = None
        self._config: LoadConfig | None = None

    # -- lifetime ---------------------------------------------------------
    def _context_params(self, config: LoadConfig, threads: int) -> Any:
        cparams = super()._context_params(config, threads)
        parallel = self._parallel
        cparams.n_ctx = max(config.n_ctx, 1) * parallel
        cparams.n_seq_max = parallel
        cparams.kv_unified = False  # one KV stream per slot, as llama-server --parallel N
        cparams.n_batch = cparams.n_ubatch = max(config.n_batch, parallel)
        return cparams

    def load(self, config: LoadConfig, parallel: int,  # type: ignore[override]
             progress: ProgressCallback) -> ModelInfo:
        if config.n_ctx <= 0:
            raise EngineError("Serving needs a context size per slot (n_ctx > 0).")
        self._parallel = max(1, parallel)
        info = super().load(config, progress)
        self._config = config
        self._slot_ctx = int(lc.llama_n_ctx_seq(self._ctx))
        self._slots = [_Slot(seq) for seq in range(self._parallel)]
        self._batch = _Batch(self._n_batch)
        self._info = replace(info, n_ctx=self._slot_ctx)
        return self._info

    def unload(self) -> None:
        self.abort_all()
        if self._embedder is not None:
            self._embedder.free()
            self._embedder = None
        self._slots, self._batch = [], None
        self._logits_key, self._logits_view = (None, 0), None
        super().unload()

    # -- requests ---------------------------------------------------------
    def submit(self, request_id: int, request: GenerationRequest) -> None:
        self._queue.append((request_id, request, time.perf_counter()))

    def cancel(self, request_id: int) -> None:
        for slot in self._active:
            if slot.request_id == request_id:
                slot.cancelled = True
                return
        for index, (queued, _, _) in enumerate(self._queue):
            if queued == request_id:
                del self._queue[index]
                self._out.append((request_id, self._finished_stats_only("cancelled")))
                return

    def busy(self) -> bool:
        return bool(self._out or self._queue or self._active)

    def abort_all(self) -> list[int]:
        ids = [request_id for request_id, _, _ in self._queue]
        self._queue.clear()
        self._out.clear()
        for slot in self._active:
            ids.append(slot.request_id)
            slot.release()
            slot.cached = []
            if self._memory:
                lc.llama_memory_seq_rm(self._memory, slot.seq, 0, -1)
        self._active = []
        return ids

    def _finished_stats_only(self, reason: FinishReason) -> Finished:
        info = self._require()
        return Finished(GenerationStats(finish_reason=reason, n_ctx=self._slot_ctx,
                                        engine=self.name, model=info.name))

    # -- admission --------------------------------------------------------
    def _request_tokens(self, request: GenerationRequest) -> list[int]:
        if request.prompt_tokens is not None:
            n_vocab = self._n_vocab
            bad = next((t for t in request.prompt_tokens if not 0 <= t < n_vocab), None)
            if bad is not None:
                raise EngineError(f"Token id {bad} is outside the vocabulary (0..{n_vocab - 1}).")
            tokens = list(request.prompt_tokens)
        elif request.prompt is not None:
            tokens = tokenize(self._vocab, request.prompt, add_special=self._add_bos)
        else:
            messages = request.raw_messages or request.messages
            if not messages:
                raise EngineError("Nothing to answer: the request has no messages and no prompt.")
            assert self._template is not None
            text = self._template.render(messages, tools=request.tools or None)
            add_bos = self._add_bos and not (self._bos_text and text.startswith(self._bos_text))
            tokens = tokenize(self._vocab, text, add_special=add_bos)
        if not tokens:
            raise EngineError("The prompt is empty.")
        if len(tokens) >= self._slot_ctx:
            raise EngineError(f"The prompt is too long for the context ({len(tokens)} tokens; "
                              f"a slot holds {self._slot_ctx}).")
        return tokens

    def _samplers(self, request: GenerationRequest, tokens: list[int]) -> tuple[Any, Any]:
        params = request.sampling
        grammar = (json_schema_sampler(self._vocab, params.json_schema)
                   if params.json_schema is not None else None)
        seed = lc.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
        sampler = build_sampler(params, seed, self._n_vocab)
        if has_penalties(params):
            for token in tokens[-PENALTY_LAST_N:]:  # the penalties also cover the prompt
                lc.llama_sampler_accept(sampler, token)
        return sampler, grammar

    def _admit(self, items: list[StepItem]) -> None:
        while self._queue and len(self._active) < len(self._slots):
            request_id, request, arrived = self._queue.popleft()
            try:
                tokens = self._request_tokens(request)
                sampler, grammar = self._samplers(request, tokens)
            except UserError as exc:
                items.append((request_id, ("error", str(exc))))
                continue
            counters = GenerationCounters(arrived)
            counters.prompt_started = time.perf_counter()
            slot = self._free_slot(tokens if request.reuse_cache else [])
            slot.start(request_id, tokens, request.sampling, sampler, grammar, counters)
            slot.n_reused = self._reuse(slot, tokens, request.reuse_cache)
            self._active.append(slot)
            # with one KV stream per sequence llama.cpp splits a batch wherever the
            # sequence ids stop increasing: a batch in slot order is one forward pass
            self._active.sort(key=lambda active: active.seq)

    def _free_slot(self, tokens: list[int]) -> _Slot:
        """The free slot whose cache shares the longest prefix with `tokens`."""
        free = [slot for slot in self._slots if slot.request_id == 0]
        return max(free, key=lambda slot: common_prefix(slot.cached, tokens))

    def _reuse(self, slot: _Slot, tokens: list[int], reuse: bool) -> int:
        """Keep the slot's cached prefix shared with `tokens` (not the last prompt token,
        which must be decoded again for its logits); return its length."""
        prefix = min(common_prefix(slot.cached, tokens), len(tokens) - 1) if reuse else 0
        if prefix < len(slot.cached) and not lc.llama_memory_seq_rm(
                self._memory, slot.seq, prefix, -1):
            lc.llama_memory_seq_rm(self._memory, slot.seq, 0, -1)
            prefix = 0
        del slot.cached[prefix:]
        return prefix

    # -- the step ---------------------------------------------------------
    def step(self) -> list[StepItem]:
        items, self._out = self._out, []
        for slot in [slot for slot in self._active if slot.cancelled]:
            self._finish(slot, "cancelled", items)
        self._admit(items)
        if not self._active:
            return items
        rows = self._fill_batch()
        self._decode(items)
        if rows:
            self._sample(rows, items)
        return items

    def _fill_batch(self) -> list[_Slot]:
        """Put each generating slot's next token, then prompt chunks, into the batch; the
        slots that will sample this step, in the order of their logits rows."""
        batch = self._batch
        assert batch is not None
        token, pos, seq, logits = batch.token, batch.pos, batch.seq, batch.logits
        capacity = len(token)
        n = 0
        rows: list[_Slot] = []
        for slot in self._active:
            if slot.pending >= 0:
                token[n] = slot.pending
                pos[n] = len(slot.cached)
                seq[n] = slot.seq
                logits[n] = 1
                slot.batch_index, slot.row = n, len(rows)
                rows.append(slot)
                n += 1
        for slot in self._active:
            slot.chunk = 0
            if slot.pending >= 0 or n >= capacity:
                continue
            start = len(slot.cached)
            chunk = slot.prompt[start:start + capacity - n]
            end = n + len(chunk)
            slot.chunk = len(chunk)
            token[n:end] = chunk
            pos[n:end] = np.arange(start, start + len(chunk), dtype=np.int32)
            seq[n:end] = slot.seq
            logits[n:end] = 0
            if start + len(chunk) == len(slot.prompt):
                logits[end - 1] = 1
                slot.batch_index, slot.row = end - 1, len(rows)
                rows.append(slot)
            else:
                slot.batch_index = slot.row = -1
            n = end
        batch.native.n_tokens = n
        return rows

    def _decode(self, items: list[StepItem]) -> None:
        batch = self._batch
        assert batch is not None
        code = lc.llama_decode(self._ctx, batch.native)
        if code != 0:
            for slot in list(self._active):
                slot.cached = []
                lc.llama_memory_seq_rm(self._memory, slot.seq, 0, -1)
                items.append((slot.request_id, ("error", "llama.cpp failed while generating "
                                                f"(error {code}).")))
                slot.release()
            self._active = []
            return
        now = time.perf_counter()
        for slot in self._active:
            if slot.pending >= 0:
                slot.cached.append(slot.pending)
                slot.pending = -1
            elif slot.chunk:
                start = len(slot.cached)
                slot.cached.extend(slot.prompt[start:start + slot.chunk])
                slot.chunk = 0
                if len(slot.cached) == len(slot.prompt):
                    slot.counters.prompt_done = now

    def _logits_rows(self, n_rows: int) -> Any:
        """This step's logits rows as a numpy view (remade only when llama.cpp moves its
        buffer or the row count changes: making one costs more than an argmax)."""
        pointer = lc.llama_get_logits(self._ctx)
        key = (ctypes.cast(pointer, ctypes.c_void_p).value, n_rows)
        if key != self._logits_key:
            self._logits_view = np.ctypeslib.as_array(pointer, shape=(n_rows, self._n_vocab))
            self._logits_key = key
        return self._logits_view

    def _sample(self, rows: list[_Slot], items: list[StepItem]) -> None:
        if not self._active:
            return
        matrix = self._logits_rows(len(rows))
        greedy = [slot for slot in rows if slot.greedy]
        picks: Any = ()
        if greedy:
            if len(greedy) == len(rows):
                picks = matrix.argmax(axis=1)
            else:
                picks = matrix[[slot.row for slot in greedy]].argmax(axis=1)
        picked = dict(zip((slot.seq for slot in greedy), picks, strict=True)) if greedy else {}
        ctx = self._ctx
        for slot in rows:
            if slot.greedy:
                token = int(picked[slot.seq])
            elif slot.grammar is not None:
                token = self._sample_with_grammar(slot, matrix[slot.row])
            else:
                token = lc.llama_sampler_sample(slot.sampler, ctx, slot.batch_index)
            self._emit(slot, token, matrix, items)

    def _sample_with_grammar(self, slot: _Slot, row: Any) -> int:
        """As llama-server does: the slot's chain picks a token; if the grammar rejects
        it, the grammar filters all candidates and the chain picks again. Checking one
        token is cheap; filtering the whole vocabulary is not."""
        token = self._apply_chain(slot, row, with_grammar=False)
        single = self._single
        single.id, single.logit, single.p = token, 1.0, 0.0  # type: ignore[assignment]
        array = lc.llama_token_data_array(data=ctypes.pointer(single), size=1, selected=-1,
                                          sorted=False)
        lc.llama_sampler_apply(slot.grammar, ctypes.byref(array))
        if math.isinf(single.logit):
            token = self._apply_chain(slot, row, with_grammar=True)
        lc.llama_sampler_accept(slot.grammar, token)
        lc.llama_sampler_accept(slot.sampler, token)
        return token

    def _apply_chain(self, slot: _Slot, row: Any, with_grammar: bool) -> int:
        """The token the slot's chain (after its grammar, if asked) picks from `row`."""
        if self._candidates is None:
            self._candidates = np.zeros(self._n_vocab, _TOKEN_DATA)
            self._token_ids = np.arange(self._n_vocab, dtype=np.int32)
        candidates = self._candidates
        candidates["id"] = self._token_ids
        candidates["logit"] = row
        candidates["p"] = 0.0
        array = lc.llama_token_data_array(
            data=candidates.ctypes.data_as(lc.llama_token_data_p), size=self._n_vocab,
            selected=-1, sorted=False)
        if with_grammar:
            lc.llama_sampler_apply(slot.grammar, ctypes.byref(array))
        lc.llama_sampler_apply(slot.sampler, ctypes.byref(array))
        if array.selected < 0:
            raise EngineError("The sampler chose no token.")
        return int(candidates["id"][array.selected])

    def _emit(self, slot: _Slot, token: int, matrix: Any, items: list[StepItem]) -> None:
        """One sampled token of a slot: its text and events; the slot ends or goes on."""
        assert self._pieces is not None
        entry = self._pieces.entries[token]
        if entry is None:
            entry = self._pieces.lookup(token)
        if entry is END_OF_GENERATION:
            if not slot.ignore_eos:
                self._finish(slot, "stop", items)
                return
            entry = ""
        stream_text = slot.text
        if type(entry) is str and not stream_text.partial:
            text = entry
        else:
            assert isinstance(entry, str | bytes)
            text = stream_text.feed(entry)
        slot.generated += 1
        counters = slot.counters
        counters.generated = slot.generated
        counters.last = now = time.perf_counter()
        request_id = slot.request_id
        if slot.generated == 1:
            counters.first = now
            slot.live_at = now + LIVE_STATS_INTERVAL_S
        elif now >= slot.live_at:
            slot.live_at = now + LIVE_STATS_INTERVAL_S
            items.append((request_id, counters.live()))
        logprobs = (self._logprob(matrix[slot.row], token, slot.top_n),) \
            if slot.want_logprobs else ()
        stops = slot.stops
        if stops is not None:
            text = stops.feed(text)
            if stops.stopped:
                items.append((request_id, TextDelta(text, (token,), logprobs)))
                self._finish(slot, "stop", items)
                return
        items.append((request_id, TextDelta(text, (token,), logprobs)))
        if slot.generated >= slot.max_tokens or len(slot.cached) >= self._slot_ctx:
            self._finish(slot, "length", items)
        else:
            slot.pending = token

    def _piece_text(self, token: int) -> str:
        assert self._pieces is not None
        entry = self._pieces.entries[token]
        if entry is None:
            entry = self._pieces.lookup(token)
        if isinstance(entry, str):
            return entry
        raw = entry if isinstance(entry, bytes) else self._pieces.piece_bytes(token)
        return raw.decode("utf-8", errors="replace")

    def _logprob(self, row: Any, token: int, top_n: int) -> TokenLogprob:
        """The token's log-probability under the model's distribution at this step
        (log-softmax of its logits row), and the `top_n` most likely tokens."""
        peak = float(row.max())
        log_total = peak + math.log(float(np.exp(row - peak).sum()))
        top: tuple[tuple[str, float], ...] = ()
        if top_n > 0:
            best = np.argpartition(row, -top_n)[-top_n:]
            best = best[np.argsort(-row[best], kind="stable")]
            top = tuple((self._piece_text(int(i)), float(row[i]) - log_total) for i in best)
        return TokenLogprob(self._piece_text(token), float(row[token]) - log_total, top)

    def _finish(self, slot: _Slot, reason: FinishReason, items: list[StepItem]) -> None:
        counters = slot.counters
        counters.finish = reason
        if reason != "cancelled":
            tail, matched = finish_stream(slot.stops, slot.text.close())
            if matched:
                counters.finish = "stop"
            if tail:
                items.append((slot.request_id, TextDelta(tail, ())))
        if len(slot.cached) < len(slot.prompt):  # ended before its prompt was in
            counters.prompt_done = time.perf_counter()
        info = self._require()
        items.append((slot.request_id, Finished(counters.stats(
            prompt_tokens=len(slot.prompt), cached_tokens=slot.n_reused, n_ctx=self._slot_ctx,
            dropped=0, engine=self.name, model=info.name))))
        slot.release()
        self._active.remove(slot)

    # -- calls ------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self._require()
        if self._embedder is None:
            assert self._config is not None
            self._embedder = Embedder(self._model, self._vocab, self._add_bos, self._slot_ctx,
                                      self._config.n_threads)
        return self._embedder.embed(texts)

    def chat_template(self) -> str:
        assert self._template is not None
        self._require()
        return self._template.source
