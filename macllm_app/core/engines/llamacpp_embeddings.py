"""Text embeddings from a llama.cpp model: a second context with embeddings on.

Mean pooling over the text's tokens, then L2 normalisation (what OpenAI's and
llama-server's embeddings endpoints return). The context is made on first use
and holds one text at a time; a text longer than it is an error, not cut.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import llama_cpp.llama_cpp as lc
import numpy as np

from macllm_app.core.engines.llamacpp_native import native_log, physical_cores, tokenize
from macllm_app.core.errors import EngineError


class Embedder:
    """An embeddings context over a loaded model (which it does not own)."""

    def __init__(self, model: Any, vocab: Any, add_bos: bool, n_ctx: int,
                 n_threads: int | None) -> None:
        self._vocab, self._add_bos, self._n_ctx = vocab, add_bos, n_ctx
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n_ctx  # a text in one ubatch
        cparams.n_seq_max = 1
        cparams.embeddings = True
        cparams.pooling_type = lc.LLAMA_POOLING_TYPE_MEAN
        cparams.n_threads = cparams.n_threads_batch = n_threads or physical_cores()
        cparams.no_perf = True
        native_log.clear()
        self._ctx = lc.llama_init_from_model(model, cparams)
        if not self._ctx:
            reason = native_log.first_error("not enough memory?")
            raise EngineError(f"llama.cpp could not create an embeddings context: {reason}.")
        self._memory = lc.llama_get_memory(self._ctx)
        self._n_embd = lc.llama_model_n_embd(model)
        self._batch = lc.llama_batch_init(n_ctx, 0, 1)

    def free(self) -> None:
        if self._ctx:
            lc.llama_batch_free(self._batch)
            lc.llama_free(self._ctx)
            self._ctx = None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> list[float]:
        tokens = tokenize(self._vocab, text, add_special=self._add_bos, parse_special=False)
        if not tokens:
            raise EngineError("An empty text has no embedding.")
        if len(tokens) > self._n_ctx:
            raise EngineError(f"The text is too long to embed ({len(tokens)} tokens > "
                              f"{self._n_ctx}).")
        batch = self._batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1
        batch.n_tokens = len(tokens)
        lc.llama_memory_clear(self._memory, True)
        code = lc.llama_decode(self._ctx, batch)
        if code != 0:
            raise EngineError(f"llama.cpp could not embed the text (error {code}).")
        pointer = lc.llama_get_embeddings_seq(self._ctx, 0)
        if not pointer:
            raise EngineError("This model gives no pooled embeddings.")
        vector = np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self._n_embd,))
        values = vector.astype(np.float64)
        norm = float(np.linalg.norm(values))
        if norm > 0.0:
            values /= norm
        return [float(x) for x in values]
