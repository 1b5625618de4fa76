"""A persistent ggml CPU thread pool for a llama.cpp context, as llama-bench uses.

Without one, ggml starts and joins its worker threads for every graph it
computes, that is for every generated token. llama-cpp-python does not bind
the thread-pool functions, so they are declared here with ctypes against the
libraries it already loaded.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from pathlib import Path
from typing import Any

import llama_cpp.llama_cpp as lc

log = logging.getLogger("macllm.engines.llamacpp")

GGML_MAX_N_THREADS = 512
DEFAULT_POLL = 50  # ggml's default hybrid polling level


class _ThreadPoolParams(ctypes.Structure):
    _fields_ = [
        ("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS),
        ("n_threads", ctypes.c_int),
        ("prio", ctypes.c_int),
        ("poll", ctypes.c_uint32),
        ("strict_cpu", ctypes.c_bool),
        ("paused", ctypes.c_bool),
    ]


def _sibling_library(stem: str) -> ctypes.CDLL | None:
    """A ggml library next to the libllama that llama-cpp-python loaded."""
    loaded = getattr(lc._lib, "_name", None)
    if not loaded:
        return None
    suffix = ".dylib" if sys.platform == "darwin" else ".dll" if sys.platform == "win32" else ".so"
    path = Path(loaded).parent / f"{'' if sys.platform == 'win32' else 'lib'}{stem}{suffix}"
    if not path.exists():
        return None
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


class ThreadPool:
    """One pool of `n_threads` CPU threads attached to a context (for prompts and tokens)."""

    def __init__(self, handle: int, free: Any) -> None:
        self._handle: int | None = handle
        self._free = free

    @classmethod
    def attach(cls, ctx: Any, n_threads: int) -> ThreadPool | None:
        """Create a pool and attach it to `ctx`; None (ggml's per-graph threads) if this
        llama.cpp build does not offer one."""
        base, cpu = _sibling_library("ggml-base"), _sibling_library("ggml-cpu")
        if base is None or cpu is None:
            log.info("no ggml libraries beside libllama; using per-graph threads")
            return None
        try:
            init, new, free = (base.ggml_threadpool_params_init, cpu.ggml_threadpool_new,
                               cpu.ggml_threadpool_free)
        except AttributeError:
            return None
        init.argtypes, init.restype = [ctypes.POINTER(_ThreadPoolParams), ctypes.c_int], None
        new.argtypes, new.restype = [ctypes.POINTER(_ThreadPoolParams)], ctypes.c_void_p
        free.argtypes, free.restype = [ctypes.c_void_p], None
        params = _ThreadPoolParams()
        init(ctypes.byref(params), n_threads)
        if params.n_threads != n_threads or params.poll != DEFAULT_POLL:
            log.warning("ggml's thread-pool parameters have another layout; not using a pool")
            return None
        handle = new(ctypes.byref(params))
        if not handle:
            return None
        attach = lc._lib.llama_attach_threadpool
        attach.argtypes, attach.restype = [lc.llama_context_p_ctypes, ctypes.c_void_p,
                                           ctypes.c_void_p], None
        attach(ctx, handle, None)  # None: prompts use the same pool
        return cls(handle, free)

    def free(self, ctx: Any) -> None:
        """Detach from `ctx` (if it is still alive) and stop the threads."""
        if self._handle is None:
            return
        if ctx:
            detach = lc._lib.llama_detach_threadpool
            detach.argtypes, detach.restype = [lc.llama_context_p_ctypes], None
            detach(ctx)
        self._free(self._handle)
        self._handle = None
