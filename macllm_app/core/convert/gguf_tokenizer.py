"""Build Hugging Face tokenizer files from a GGUF vocabulary.

Byte-level BPE vocabularies (`tokenizer.ggml.model == "gpt2"`) become a
`tokenizers` BPE model whose pre-tokenizer mirrors llama.cpp's regular
expressions for the GGUF's `tokenizer.ggml.pre`, so both sides split text,
and so token ids, the same way. Control tokens become special added tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from macllm_app.core.errors import ModelFileError, one_line

# llama.cpp's token types (enum llama_token_type).
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 2, 3, 4

_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
           r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
          r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

#: llama.cpp's pre-tokenizer regexes (llama-vocab.cpp), applied one after another.
PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "default": (r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"),
    "gpt-2": (_GPT2,),
    "smollm": (r"\p{N}", _GPT2),
    "starcoder": (r"\p{N}", _GPT2),
    "llama-bpe": (_LLAMA3,),
    "llama3": (_LLAMA3,),
    "llama-v3": (_LLAMA3,),
    "qwen2": (_QWEN2,),
}
#: Pre-tokenizer types for which llama.cpp looks a whole word up before merging.
IGNORE_MERGES = frozenset({"llama-bpe", "llama3", "llama-v3"})

Meta = Mapping[str, Any]


def _token_string(tokens: Sequence[str], key: str, meta: Meta) -> str | None:
    value = meta.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(tokens):
        return tokens[value]
    return None


def _pre_tokenizer(pre: str) -> Any:
    from tokenizers import Regex, pre_tokenizers

    steps: list[Any] = [pre_tokenizers.Split(Regex(rx), behavior="isolated")
                        for rx in PRE_TOKENIZERS[pre]]
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                          use_regex=False))
    return pre_tokenizers.Sequence(steps)


def _post_processor(bos: str | None, eos: str | None, tokens: Sequence[str],
                    meta: Meta) -> Any:
    from tokenizers import processors

    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False)) and bos is not None
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False)) and eos is not None
    if not (add_bos or add_eos):
        return processors.ByteLevel(trim_offsets=False)
    single = [*([f"{bos}:0"] if add_bos else []), "$A:0", *([f"{eos}:0"] if add_eos else [])]
    pair = [*single, *([f"{bos}:1"] if add_bos else []), "$B:1",
            *([f"{eos}:1"] if add_eos else [])]
    specials = {t for t in (bos if add_bos else None, eos if add_eos else None) if t}
    return processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=single, pair=pair,
                                      special_tokens=[(t, tokens.index(t)) for t in specials]),
    ])


def check_tokenizer_kind(meta: Meta, label: str) -> None:
    """Refuse tokenizer types and pre-tokenizers this module cannot rebuild (the
    header's metadata is enough)."""
    model = meta.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise ModelFileError(
            f"{label}: tokenizer type {model!r} is not supported for conversion "
            "(only byte-level BPE, 'gpt2')")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise ModelFileError(
            f"{label}: pre-tokenizer {pre!r} is not supported for conversion "
            f"(supported: {', '.join(sorted(PRE_TOKENIZERS))})")


def check_tokenizer(meta: Meta, label: str) -> None:
    """Refuse vocabularies this module cannot rebuild faithfully."""
    check_tokenizer_kind(meta, label)
    tokens = meta.get("tokenizer.ggml.tokens")
    merges = meta.get("tokenizer.ggml.merges")
    if not isinstance(tokens, list) or not tokens:
        raise ModelFileError(f"{label}: no tokenizer.ggml.tokens")
    if not isinstance(merges, list):
        raise ModelFileError(f"{label}: a BPE vocabulary without tokenizer.ggml.merges")
    types = meta.get("tokenizer.ggml.token_type")
    if types is not None and (not isinstance(types, list) or len(types) != len(tokens)):
        raise ModelFileError(f"{label}: tokenizer.ggml.token_type does not match the tokens")


def build_tokenizer(meta: Meta, label: str) -> Any:
    """A `tokenizers.Tokenizer` equivalent to llama.cpp's for this vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    check_tokenizer(meta, label)
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    pre: str = meta.get("tokenizer.ggml.pre", "default")
    merges: list[tuple[str, str]] = []
    for m in meta["tokenizer.ggml.merges"]:
        left, sep, right = str(m).partition(" ")
        if not sep:
            raise ModelFileError(f"{label}: malformed merge {m!r}")
        merges.append((left, right))
    try:
        bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                         ignore_merges=pre in IGNORE_MERGES)
    except Exception as exc:  # the tokenizers package raises a bare Exception
        raise ModelFileError(f"{label}: the tokenizer merges do not match its vocabulary "
                             f"({one_line(exc)})") from None
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = _pre_tokenizer(pre)
    tok.decoder = decoders.ByteLevel()
    types = meta.get("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(tokens)
    special = [AddedToken(t, special=True, normalized=False)
               for t, ty in zip(tokens, types, strict=True)
               if ty in (TOKEN_CONTROL, TOKEN_UNKNOWN)]
    user = [AddedToken(t, special=False, normalized=False)
            for t, ty in zip(tokens, types, strict=True) if ty == TOKEN_USER_DEFINED]
    tok.add_special_tokens(special)
    tok.add_tokens(user)
    bos = _token_string(tokens, "tokenizer.ggml.bos_token_id", meta)
    eos = _token_string(tokens, "tokenizer.ggml.eos_token_id", meta)
    tok.post_processor = _post_processor(bos, eos, tokens, meta)
    return tok


def special_token_ids(meta: Meta) -> dict[str, int]:
    """bos/eos/unk/pad/eot ids that name a real token."""
    n = len(meta.get("tokenizer.ggml.tokens") or ())
    out: dict[str, int] = {}
    for name in ("bos", "eos", "unknown", "padding", "eot", "eom"):
        value = meta.get(f"tokenizer.ggml.{name}_token_id")
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n:
            out[name] = value
    return out


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_tokenizer_files(meta: Meta, folder: Path, label: str,
                          context_length: int | None) -> list[int]:
    """Write tokenizer.json, tokenizer_config.json, special_tokens_map.json and
    generation_config.json into `folder`; return the end-of-generation token ids."""
    tok = build_tokenizer(meta, label)
    tok.save(str(folder / "tokenizer.json"))
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    ids = special_token_ids(meta)
    names = {"bos": "bos_token", "eos": "eos_token", "unknown": "unk_token",
             "padding": "pad_token"}
    special_map = {names[k]: tokens[v] for k, v in ids.items() if k in names}
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "clean_up_tokenization_spaces": False,
    }
    if context_length:
        config["model_max_length"] = context_length
    template = meta.get("tokenizer.chat_template")
    if isinstance(template, str) and template:
        config["chat_template"] = template
    _write_json(folder / "tokenizer_config.json", config)
    _write_json(folder / "special_tokens_map.json", special_map)
    eog = list(dict.fromkeys(ids[k] for k in ("eos", "eot", "eom") if k in ids))
    generation: dict[str, Any] = {}
    if "bos" in ids:
        generation["bos_token_id"] = ids["bos"]
    if eog:
        generation["eos_token_id"] = eog[0] if len(eog) == 1 else eog
    if "padding" in ids:
        generation["pad_token_id"] = ids["padding"]
    _write_json(folder / "generation_config.json", generation)
    return eog
