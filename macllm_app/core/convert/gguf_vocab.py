"""A Hugging Face byte-level BPE tokenizer as GGUF `tokenizer.ggml.*` metadata.

The reverse of `gguf_tokenizer`: the tokenizer.json pre-tokenizer is read back
as a list of regular expressions and matched against llama.cpp's named
pre-tokenizers, so llama.cpp splits text the way the folder's tokenizer does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from macllm_app.core.convert.gguf_tokenizer import (
    IGNORE_MERGES,
    PRE_TOKENIZERS,
    TOKEN_CONTROL,
    TOKEN_NORMAL,
    TOKEN_USER_DEFINED,
)

TOKEN_UNUSED = 5
MAX_TOKENIZER_BYTES = 256 << 20
_HF_CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_CPP_CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_GPT2 = PRE_TOKENIZERS["gpt-2"][0]
#: Preferred name for each set of regexes (several names share one).
_PRE_BY_REGEXES = {rx: name for name, rx in reversed(list(PRE_TOKENIZERS.items()))}
_PRE_BY_REGEXES[PRE_TOKENIZERS["llama-bpe"]] = "llama-bpe"


class VocabError(ValueError):
    """The tokenizer cannot be expressed as a GGUF byte-level BPE vocabulary."""


def load_tokenizer_json(folder: Path) -> dict[str, Any]:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise VocabError("it has no tokenizer.json")
    if path.stat().st_size > MAX_TOKENIZER_BYTES:
        raise VocabError("its tokenizer.json is too large")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise VocabError("its tokenizer.json is not valid JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise VocabError("its tokenizer.json has no model")
    return data


def _regexes(pre: Any) -> tuple[str, ...]:
    """The pre-tokenizer as the regexes llama.cpp would apply one after another."""
    if not isinstance(pre, dict):
        raise VocabError("its tokenizer has no pre-tokenizer")
    kind = pre.get("type")
    if kind == "Sequence":
        steps = pre.get("pretokenizers")
        if not isinstance(steps, list):
            raise VocabError("its pre-tokenizer sequence is malformed")
        return tuple(rx for step in steps for rx in _regexes(step))
    if kind == "ByteLevel":
        if pre.get("add_prefix_space"):
            raise VocabError("its byte-level pre-tokenizer adds a prefix space")
        return (_GPT2,) if pre.get("use_regex", True) else ()
    if kind == "Digits":
        return (r"\p{N}",) if pre.get("individual_digits") else (r"\p{N}+",)
    if kind == "Split":
        pattern = pre.get("pattern")
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        if (not isinstance(regex, str) or pre.get("invert")
                or str(pre.get("behavior", "")).lower() != "isolated"):
            raise VocabError("its pre-tokenizer has a split llama.cpp does not know")
        return (regex.replace(_HF_CONTRACTIONS, _CPP_CONTRACTIONS),)
    raise VocabError(f"its pre-tokenizer {kind!r} has no llama.cpp equivalent")


def pre_tokenizer_name(data: dict[str, Any]) -> str:
    """llama.cpp's name for this tokenizer.json's pre-tokenizer, or VocabError."""
    model = data["model"]
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise VocabError("its tokenizer is not byte-level BPE (only those export to GGUF)")
    if data.get("normalizer") is not None:
        raise VocabError("its tokenizer normalizes text, which llama.cpp would not do")
    decoder = data.get("decoder")
    if not isinstance(decoder, dict) or decoder.get("type") != "ByteLevel":
        raise VocabError("its tokenizer does not decode byte-level tokens")
    name = _PRE_BY_REGEXES.get(_regexes(data.get("pre_tokenizer")))
    if name is None:
        raise VocabError("its pre-tokenizer matches none llama.cpp knows")
    if bool(model.get("ignore_merges")) != (name in IGNORE_MERGES):
        raise VocabError("its tokenizer's merge rule differs from llama.cpp's")
    return name


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _adds_bos_eos(tok: Any) -> tuple[bool, bool]:
    """Whether the tokenizer adds a token before / after plain text."""
    plain = tok.encode("a", add_special_tokens=False).ids
    full = tok.encode("a", add_special_tokens=True).ids
    return full[:1] != plain[:1], full[-1:] != plain[-1:]


def vocab_metadata(folder: Path, n_vocab: int, eos_ids: list[int]) -> dict[str, Any]:
    """`tokenizer.ggml.*` keys (values ready for `mx.save_gguf`) for a folder whose
    embedding has `n_vocab` rows; raises VocabError."""
    import mlx.core as mx
    from tokenizers import Tokenizer

    data = load_tokenizer_json(folder)
    pre = pre_tokenizer_name(data)
    model = data["model"]
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        raise VocabError("its tokenizer.json has no vocabulary")
    tokens: list[str | None] = [None] * n_vocab
    types = [TOKEN_NORMAL] * n_vocab
    for text, i in vocab.items():
        if not isinstance(i, int) or not 0 <= i < n_vocab:
            raise VocabError(f"token id {i!r} is outside the {n_vocab}-row embedding")
        tokens[i] = text
    for added in data.get("added_tokens") or ():
        i = added.get("id")
        if not isinstance(i, int) or not 0 <= i < n_vocab:
            raise VocabError(f"added token id {i!r} is outside the {n_vocab}-row embedding")
        tokens[i] = str(added.get("content"))
        types[i] = TOKEN_CONTROL if added.get("special") else TOKEN_USER_DEFINED
    for i, t in enumerate(tokens):
        if t is None:  # embedding rows beyond the vocabulary, as llama.cpp's converter pads
            tokens[i] = f"[PAD{i}]"
            types[i] = TOKEN_UNUSED
    if len(set(tokens)) != n_vocab:
        raise VocabError("its vocabulary has duplicate tokens")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or ()]
    meta: dict[str, Any] = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": mx.array(types, dtype=mx.int32),
        "tokenizer.ggml.merges": merges,
    }
    index = {t: i for i, t in enumerate(tokens)}
    config = _tokenizer_config(folder)
    ids = {name: index.get(_token_text(config.get(f"{name}_token")) or "")
           for name in ("bos", "eos", "unk", "pad")}
    if eos_ids:
        ids["eos"] = eos_ids[0]
    keys = {"bos": "bos", "eos": "eos", "unk": "unknown", "pad": "padding"}
    for name, i in ids.items():
        if i is not None:
            meta[f"tokenizer.ggml.{keys[name]}_token_id"] = mx.array(i, dtype=mx.uint32)
    add_bos, add_eos = _adds_bos_eos(Tokenizer.from_file(str(folder / "tokenizer.json")))
    if isinstance(config.get("add_bos_token"), bool):
        add_bos = add_bos or config["add_bos_token"]
    meta["tokenizer.ggml.add_bos_token"] = mx.array(add_bos)
    meta["tokenizer.ggml.add_eos_token"] = mx.array(add_eos)
    template = _chat_template(folder, config)
    if template:
        meta["tokenizer.chat_template"] = template
    return meta


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    path = folder / "tokenizer_config.json"
    try:
        data = json.loads(path.read_bytes()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8", errors="replace")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: take the default one
        template = next((t.get("template") for t in template
                         if isinstance(t, dict) and t.get("name") == "default"), None)
    return template if isinstance(template, str) and template else None
