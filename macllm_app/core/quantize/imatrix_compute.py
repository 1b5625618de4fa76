"""Compute an importance matrix the way `llama-imatrix` does, at llama.cpp's speed.

llama.cpp calls an evaluation callback (`cb_eval`) for every node of its compute
graph. For each matrix product with a model weight (`blk.*`) and at least 16 tokens
of activations, we add the squares of the activations, column by column, to that
weight's sums, and count the tokens: the importance of each input column. MoE
experts (`MUL_MAT_ID`) are kept per expert. A few ctypes bindings to the `libggml`
inside llama-cpp-python read the tensors. The text is cut into 512-token chunks
like `llama-perplexity`'s; the result is written in llama.cpp's `imatrix.gguf`
format. It runs as a job (`IMATRIX_TARGET`).
"""

from __future__ import annotations

import ctypes
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from macllm_app.core.convert.staging import staged_file
from macllm_app.core.errors import Cancelled, UserError
from macllm_app.core.quantize.imatrix import write_imatrix
from macllm_app.core.quantize.llama_logits import SEQUENCES
from macllm_app.core.quantize.quality import N_CTX, chunks_of
from macllm_app.core.types import ProgressCallback, StopCheck

IMATRIX_TARGET = f"{__name__}:compute_imatrix"
IMATRIX_TITLE = "Computing the importance matrix"
GGML_OP_MUL_MAT, GGML_OP_MUL_MAT_ID = 29, 30  # enum ggml_op in ggml.h
GGML_TYPE_F32 = 0
MIN_TOKENS = 16  # llama-imatrix ignores smaller batches (they skew the statistics)
_OBJECT_BYTES = 32  # sizeof(struct ggml_object), in front of each tensor in a context


class GgmlTensor(ctypes.Structure):
    """`struct ggml_tensor` of ggml.h (GGML_MAX_DIMS 4, GGML_MAX_SRC 10)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def _ggml() -> ctypes.CDLL:
    """The libggml-base that llama-cpp-python loaded, with the calls we read tensors by."""
    import llama_cpp

    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / f"libggml-base{suffix}"))
    lib.ggml_tensor_overhead.restype = ctypes.c_size_t
    lib.ggml_nbytes.restype = ctypes.c_size_t
    lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_buffer_is_host.restype = ctypes.c_bool
    lib.ggml_backend_buffer_is_host.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                            ctypes.c_size_t]
    overhead = lib.ggml_tensor_overhead()
    if ctypes.sizeof(GgmlTensor) + _OBJECT_BYTES != overhead:
        raise UserError("This build of llama.cpp lays out its tensors differently "
                        f"({overhead} bytes); the importance matrix cannot be computed.")
    return lib


def weight_name(name: str) -> str:
    """The weight a graph node names ("attn_q-0#blk.0.attn_q.weight#..." -> the middle)."""
    if "#" not in name:
        return name
    return name.split("#", 2)[1]


class Collector:
    """Sums of squared activations and token counts, per weight (and per expert)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}
        self.error: BaseException | None = None
        self.callback = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_bool,
                                         ctypes.c_void_p)(self._on_eval)

    def _on_eval(self, node: int, ask: bool, _user_data: int) -> bool:
        try:
            return self._eval(node, ask)
        except BaseException as exc:  # an exception must not cross into llama.cpp
            self.error = self.error or exc
            return not ask

    def _eval(self, node: int, ask: bool) -> bool:
        t = GgmlTensor.from_address(node)
        if t.op not in (GGML_OP_MUL_MAT, GGML_OP_MUL_MAT_ID) or not t.src[0] or not t.src[1]:
            return not ask  # answering a question: not wanted; after a compute: go on
        weight = GgmlTensor.from_address(t.src[0])
        name = weight_name(weight.name.decode(errors="replace"))
        if ask:
            if t.op == GGML_OP_MUL_MAT_ID:
                return True
            acts = GgmlTensor.from_address(t.src[1])
            return acts.ne[1] >= MIN_TOKENS and acts.type == GGML_TYPE_F32 \
                and name.startswith("blk.")
        if t.op == GGML_OP_MUL_MAT_ID:
            self._experts(t, weight, name)
        else:
            self._dense(t.src[1], weight, name)
        return True

    def _read(self, address: int) -> np.ndarray:
        """The tensor's bytes as an array (copied from a GPU buffer where it lives there)."""
        t = GgmlTensor.from_address(address)
        size = self.lib.ggml_nbytes(address)
        if self.lib.ggml_backend_buffer_is_host(t.buffer):
            raw = (ctypes.c_char * size).from_address(t.data)
            return np.frombuffer(raw, dtype=np.uint8).copy()
        out = np.empty(size, dtype=np.uint8)
        self.lib.ggml_backend_tensor_get(address, out.ctypes.data, 0, size)
        return out

    def _rows(self, address: int) -> np.ndarray:
        """An F32 activation tensor as [ne3, ne2, ne1, ne0], by its byte strides."""
        t = GgmlTensor.from_address(address)
        raw = self._read(address)
        shape = (t.ne[3], t.ne[2], t.ne[1], t.ne[0])
        strides = (t.nb[3], t.nb[2], t.nb[1], t.nb[0])
        return np.lib.stride_tricks.as_strided(raw.view(np.float32), shape, strides)

    def _dense(self, acts_address: int, weight: GgmlTensor, name: str) -> None:
        x = self._rows(acts_address)
        n_mat = weight.ne[2] * weight.ne[3]
        ne0 = x.shape[-1]
        sums = self.sums.setdefault(name, np.zeros(ne0 * n_mat))
        counts = self.counts.setdefault(name, np.zeros(1))
        squares = np.square(x).sum(axis=2, dtype=np.float64)  # [ne3, ne2, ne0]
        for i3 in range(x.shape[0]):
            for i2 in range(x.shape[1]):
                mat = (i3 % weight.ne[3]) * weight.ne[2] + (i2 % weight.ne[2])
                sums[mat * ne0:(mat + 1) * ne0] += squares[i3, i2]
        counts[0] += x.shape[0] * x.shape[1] * x.shape[2] / n_mat

    def _experts(self, t: GgmlTensor, weight: GgmlTensor, name: str) -> None:
        x = self._rows(t.src[1]).astype(np.float64)[0]  # [n_tokens, n_used, ne0]
        ids_tensor = GgmlTensor.from_address(t.src[2])
        raw = self._read(t.src[2])
        ids = np.lib.stride_tricks.as_strided(
            raw.view(np.int32), (ids_tensor.ne[1], ids_tensor.ne[0]),
            (ids_tensor.nb[1], ids_tensor.nb[0]))  # [n_tokens, n_used]
        n_experts, ne0 = weight.ne[2], x.shape[-1]
        sums = self.sums.setdefault(name, np.zeros(ne0 * n_experts))
        counts = self.counts.setdefault(name, np.zeros(n_experts))
        for token in range(ids.shape[0]):
            for used in range(ids.shape[1]):
                expert = int(ids[token, used])
                row = x[token, used % x.shape[1]]
                sums[expert * ne0:(expert + 1) * ne0] += row * row
                counts[expert] += 1


def _fill(batch: Any, chunks: list[list[int]]) -> Any:
    """The chunks as sequences of one batch, every token asking for its logits: as
    llama-imatrix runs them, so the last layer's products see whole chunks too."""
    n = 0
    for seq, chunk in enumerate(chunks):
        for pos, token in enumerate(chunk):
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
            batch.seq_id[n][0] = seq
            batch.logits[n] = True
            n += 1
    batch.n_tokens = n
    return batch


def compute_imatrix(model: str, text: str, dest: str, max_chunks: int | None = None,
                    threads: int = 0, progress: ProgressCallback | None = None,
                    should_stop: StopCheck | None = None) -> dict[str, Any]:
    """The job: write `dest` (imatrix.gguf) from `model` run over `text`."""
    import llama_cpp.llama_cpp as lc

    from macllm_app.core.engines.llamacpp_native import init_backend, tokenize

    report = progress or (lambda _f, _m: None)
    init_backend()
    collector = Collector(_ggml())
    params = lc.llama_model_default_params()
    params.n_gpu_layers = 0
    loaded = lc.llama_model_load_from_file(model.encode(), params)
    if not loaded:
        raise UserError(f"llama.cpp could not load {Path(model).name}.")
    try:
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = N_CTX * SEQUENCES  # llama-imatrix's batching
        cparams.n_ubatch = N_CTX
        cparams.n_seq_max = SEQUENCES
        if threads:
            cparams.n_threads = cparams.n_threads_batch = threads
        cparams.cb_eval = collector.callback
        cparams.cb_eval_user_data = None
        ctx = lc.llama_init_from_model(loaded, cparams)
        if not ctx:
            raise UserError(f"llama.cpp could not make a context for {Path(model).name}.")
        try:
            vocab = lc.llama_model_get_vocab(loaded)
            bos = lc.llama_vocab_bos(vocab) if lc.llama_vocab_get_add_bos(vocab) else None
            chunks = list(chunks_of(tokenize(vocab, text, add_special=False), N_CTX, bos,
                                    max_chunks))
            if not chunks:
                raise UserError(f"The calibration text is too short for one chunk of {N_CTX} "
                                "tokens.")
            began = time.monotonic()
            batch = lc.llama_batch_init(N_CTX * SEQUENCES, 0, SEQUENCES)
            for start in range(0, len(chunks), SEQUENCES):
                if should_stop is not None and should_stop():
                    raise Cancelled
                lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
                group = chunks[start:start + SEQUENCES]
                if lc.llama_decode(ctx, _fill(batch, group)) != 0:
                    raise UserError("llama.cpp could not evaluate the calibration text.")
                if collector.error is not None:
                    raise collector.error
                done = start + len(group)
                left = (time.monotonic() - began) / done * (len(chunks) - done)
                report(done / len(chunks) * 0.95,
                       f"chunk {done} of {len(chunks)}, about {left:.0f} s left")
            lc.llama_batch_free(batch)
        finally:
            lc.llama_free(ctx)
    finally:
        lc.llama_model_free(loaded)
    target = Path(dest)
    with staged_file(target) as staging:
        write_imatrix(staging, collector.sums, collector.counts,
                      datasets=["calibration text"], chunk_count=len(chunks), chunk_size=N_CTX)
    report(1.0, f"Importance matrix of {len(collector.sums)} weights")
    return {"path": str(target), "entries": len(collector.sums), "chunks": len(chunks)}
