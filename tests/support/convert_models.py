"""Helpers for the conversion tests: requantized copies of the default model (made by
llama.cpp itself), greedy decoding on both engines, and tricky tokenizer inputs."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

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


def agreeing_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))
