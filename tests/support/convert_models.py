"""Helpers for the conversion tests: requantized copies of the default model (made by
llama.cpp itself), greedy decoding, logits compared between engines, and tricky
tokenizer inputs.

Engines are compared by their logits along one token sequence, with tolerances
that hold on every CPU: llama.cpp picks its kernels for the CPU it runs on (AVX2,
AVX-512, NEON, Metal), so greedy sequences may part at a near-tie on one machine
and not on another.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Inputs where tokenizers usually disagree: digits, accents, CJK, emoji, runs of
#: spaces and newlines, contractions, special tokens inside text.
TRICKY_TEXTS = (
    "12345",
    "1234567 and 3.14159",
    "héllo wörld 日本語 🙂",
    "  two  spaces   and\ttab\n\nnewlines\n",
    "   ",
    "\n",
    "<|im_start|>user\nHi<|im_end|>\n",
    "a<|endoftext|>b",
    "Hello, world! It's 3 o'clock; DON'T",
    "x = [1,2,3]  # code\n    return f(x)\r\n",
    "ÀÉÎ ñ ß ﬁ",
    "$+<=>^~|` a$b",
)
CHAT = [{"role": "user", "content": "Write a short poem about the sea."}]


def requantize(src: Path, dest: Path, ftype: str) -> Path:
    """`src` rewritten by llama.cpp's own quantizer as `ftype` (e.g. "F16", "Q4_K_M")."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.allow_requantize = True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(),
                                        ctypes.byref(params))
    assert rc == 0, f"llama_model_quantize failed ({rc})"
    return dest


def llama(path: Path, **kw: Any) -> Any:
    import llama_cpp

    return llama_cpp.Llama(str(path), n_ctx=512, n_threads=2, verbose=False, **kw)


def llama_greedy(llm: Any, prompt_ids: list[int], n: int) -> list[int]:
    out: list[int] = []
    llm.reset()
    for token in llm.generate(prompt_ids, temp=0.0, top_k=1, repeat_penalty=1.0):
        out.append(int(token))
        if len(out) >= n:
            break
    return out


def mlx_greedy(model: Any, prompt_ids: list[int], n: int) -> list[int]:
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    out: list[int] = []
    steps = generate_step(mx.array(prompt_ids), model, max_tokens=n,
                          sampler=lambda logits: mx.argmax(logits, axis=-1))
    for token, _ in steps:
        out.append(int(token))
    return out


def llama_logits(llm: Any, seq: list[int], start: int) -> np.ndarray:
    """llama.cpp's logits for the tokens after seq[start - 1] (each row predicts the next)."""
    llm.reset()
    llm.eval(seq)
    return np.array(llm.scores[start - 1:len(seq) - 1])


def mlx_logits(model: Any, seq: list[int], start: int) -> np.ndarray:
    import mlx.core as mx

    return np.array(model(mx.array([seq]))[0].astype(mx.float32))[start - 1:-1]


@dataclass(frozen=True)
class Agreement:
    """How closely two engines' logits agree along one sequence."""

    max_abs: float       # the largest logit difference
    mean_kl: float       # mean KL(reference || ours) of the next-token distributions, in nats
    top1: float          # share of positions whose top choice is the same
    worst_tie: float     # where the top choices differ: our logit margin between the two


def agreement(ours: np.ndarray, reference: np.ndarray) -> Agreement:
    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    lp, lq = log_softmax(reference.astype(np.float64)), log_softmax(ours.astype(np.float64))
    kl = (np.exp(lp) * (lp - lq)).sum(-1)
    mine, theirs = ours.argmax(-1), reference.argmax(-1)
    rows = np.arange(len(ours))
    margins = ours[rows, mine] - ours[rows, theirs]
    return Agreement(max_abs=float(np.abs(ours - reference).max()), mean_kl=float(kl.mean()),
                     top1=float((mine == theirs).mean()),
                     worst_tie=float(margins.max(initial=0.0)))
