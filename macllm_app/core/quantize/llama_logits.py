"""llama.cpp's logits for perplexity, batched as `llama-perplexity` batches them.

Several chunks go through one `llama_decode` call as separate sequences (a batch
of `SEQUENCES` x 512 tokens, one KV cache slot of 512 per sequence), and logits are
asked for only where they are scored (the second half of each chunk), so the output
layer runs for those tokens alone. Through llama-cpp-python's low-level API: the
high-level `Llama` object holds one sequence and keeps every position's logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from macllm_app.core.errors import UserError

#: Chunks decoded together: llama-perplexity's default batch (2048) over 512 tokens.
SEQUENCES = 4


class LlamaLogits:
    """One model and one context sized for `sequences` chunks of `n_ctx` tokens."""

    def __init__(self, path: Path, n_ctx: int, threads: int = 0,
                 sequences: int = SEQUENCES) -> None:
        import llama_cpp

        from macllm_app.core.engines.llamacpp_native import init_backend

        init_backend()  # llama.cpp's log: errors kept, the rest dropped
        self.lc = llama_cpp
        self.n_ctx, self.sequences = n_ctx, sequences
        model_params = llama_cpp.llama_model_default_params()
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
        if not self.model:
            raise UserError(f"llama.cpp could not load {path.name}.")
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * sequences
        params.n_batch = n_ctx * sequences
        params.n_ubatch = n_ctx
        params.n_seq_max = sequences
        if threads:
            params.n_threads = params.n_threads_batch = threads
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise UserError(f"llama.cpp could not make a context for {path.name}.")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.bos = llama_cpp.llama_vocab_bos(self.vocab) \
            if llama_cpp.llama_vocab_get_add_bos(self.vocab) else None
        self.batch = llama_cpp.llama_batch_init(n_ctx * sequences, 0, sequences)

    def close(self) -> None:
        if self.ctx:
            self.lc.llama_batch_free(self.batch)
            self.lc.llama_free(self.ctx)
            self.lc.llama_model_free(self.model)
            self.ctx = self.model = None

    def __del__(self) -> None:
        self.close()

    def tokenize(self, text: str) -> list[int]:
        from macllm_app.core.engines.llamacpp_native import tokenize

        return list(tokenize(self.vocab, text, add_special=False, parse_special=False))

    def scored_logits(self, chunks: list[list[int]], first: int) -> list[np.ndarray]:
        """For each chunk (at most `sequences`), the logits of positions `first`..end."""
        if len(chunks) > self.sequences:
            raise ValueError(f"{len(chunks)} chunks, room for {self.sequences}")
        self._clear()
        batch = self.batch
        n = 0
        for seq, chunk in enumerate(chunks):
            for pos, token in enumerate(chunk):
                batch.token[n] = token
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = pos >= first
                n += 1
        batch.n_tokens = n
        self._decode(batch)
        rows = sum(len(chunk) - first for chunk in chunks)
        flat = np.ctypeslib.as_array(self.lc.llama_get_logits(self.ctx),
                                     shape=(rows, self.n_vocab))
        out, start = [], 0
        for chunk in chunks:
            count = len(chunk) - first
            out.append(np.array(flat[start:start + count], dtype=np.float32))
            start += count
        return out

    def decode_one_by_one(self, tokens: list[int]) -> None:
        """Decode `tokens` one at a time from an empty cache (a reply's pace)."""
        self._clear()
        batch = self.batch
        for pos, token in enumerate(tokens):
            batch.token[0], batch.pos[0], batch.n_seq_id[0] = token, pos, 1
            batch.seq_id[0][0], batch.logits[0] = 0, True
            batch.n_tokens = 1
            self._decode(batch)

    def _clear(self) -> None:
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)

    def _decode(self, batch: Any) -> None:
        code = self.lc.llama_decode(self.ctx, batch)
        if code != 0:
            raise UserError(f"llama.cpp could not evaluate the text (error {code}).")
