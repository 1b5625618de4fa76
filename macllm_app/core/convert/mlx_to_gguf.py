"""Export an MLX llama folder as an F16 GGUF file that llama.cpp runs.

Weights go through mlx-lm's GGUF helpers (`mlx_lm.gguf`: llama.cpp tensor
names, q/k rows permuted for interleaved rotary embeddings, hyper-parameters);
quantized layers are dequantized first, as `mlx_lm.fuse --export-gguf
--dequantize` does. The vocabulary is written as llama.cpp's byte-level BPE
(`gguf_vocab`): mlx-lm's own writer labels every vocabulary as sentencepiece
and stores token types as uint32, which llama.cpp refuses to load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from macllm_app.core.convert.gguf_vocab import (
    VocabError,
    load_tokenizer_json,
    pre_tokenizer_name,
    vocab_metadata,
)
from macllm_app.core.convert.rope import llama3_rope_factors
from macllm_app.core.convert.staging import check_dest_file, staged_file
from macllm_app.core.errors import Cancelled, ModelFileError, UserError
from macllm_app.core.progress import monotonic
from macllm_app.core.types import ProgressCallback, StopCheck

log = logging.getLogger("macllm.convert")
EXPORTABLE_TYPES = frozenset({"llama", "mistral"})  # mlx-lm runs both with its llama model
_GGUF_F16 = 1  # general.file_type: LLAMA_FTYPE_MOSTLY_F16


def _read_config(folder: Path) -> dict[str, Any]:
    from macllm_app.core.formats.mlx_folder import validate_mlx_folder

    validate_mlx_folder(folder)
    config = json.loads((folder / "config.json").read_bytes())
    generation = folder / "generation_config.json"
    if generation.is_file():
        try:
            eos = json.loads(generation.read_bytes()).get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            eos = None
        if eos is not None:
            config["eos_token_id"] = eos
    return dict(config)


def _rope_scaling(config: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """("linear" or "llama3", the scaling), None without scaling; ValueError for kinds
    GGUF llama cannot hold."""
    scaling = config.get("rope_scaling")
    if not scaling:
        return None
    kind = scaling.get("type", scaling.get("rope_type")) if isinstance(scaling, dict) else None
    if kind == "default":
        return None
    if kind not in ("linear", "llama3") or not isinstance(scaling.get("factor"), (int, float)):
        raise ValueError(f"its rope scaling ({kind!r}) has no GGUF llama equivalent here")
    return kind, scaling


def _config_reason(config: dict[str, Any]) -> str | None:
    model_type = config.get("model_type")
    if model_type not in EXPORTABLE_TYPES:
        return f"its model type is {model_type!r} (GGUF export supports llama models)"
    if config.get("num_local_experts"):
        return "it is a mixture-of-experts model (not supported for GGUF export)"
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if not isinstance(hidden, int) or not isinstance(heads, int) or heads <= 0:
        return "its config.json has no hidden_size / num_attention_heads"
    if config.get("head_dim") not in (None, hidden // heads):
        return "its attention head size is not hidden_size / num_attention_heads"
    if config.get("attention_bias") or config.get("mlp_bias"):
        return "it has attention or MLP biases (not supported for GGUF export)"
    if not config.get("max_position_embeddings"):
        return "its config.json has no max_position_embeddings"
    try:
        _rope_scaling(config)
    except ValueError as exc:
        return str(exc)
    return None


def gguf_export_support(folder: Path) -> str | None:
    """None when `folder` can be exported to GGUF, else a one-line reason."""
    try:
        config = _read_config(Path(folder))
        reason = _config_reason(config)
        if reason is None:
            pre_tokenizer_name(load_tokenizer_json(Path(folder)))
    except ModelFileError as exc:
        return str(exc)
    except VocabError as exc:
        return str(exc)
    except (OSError, ValueError) as exc:
        return f"it cannot be read ({exc})"
    return reason


class _NoVocab:
    """Lets mlx-lm's `prepare_metadata` write only the model's hyper-parameters."""

    vocab_size = 0

    class tokenizer:  # noqa: N801 (mirrors the attribute prepare_metadata reads)
        bos_token_id = eos_token_id = unk_token_id = None

    def all_tokens(self) -> list[tuple[str, float, int]]:
        return []


def _model_metadata(config: dict[str, Any], name: str) -> dict[str, Any]:
    import mlx.core as mx
    from mlx_lm.gguf import prepare_metadata

    meta = {k: v for k, v in prepare_metadata(config, _NoVocab()).items()
            if not k.startswith(("tokenizer.", "llama.rope.scaling."))}
    meta.pop("general.quantization_version", None)
    meta["general.name"] = name
    meta["general.file_type"] = mx.array(_GGUF_F16, dtype=mx.uint32)
    rope = _rope_scaling(config)
    if rope is not None and rope[0] == "linear":
        meta["llama.rope.scaling.type"] = "linear"
        meta["llama.rope.scaling.factor"] = mx.array(float(rope[1]["factor"]), dtype=mx.float32)
    return meta


def _extra_tensors(config: dict[str, Any]) -> dict[str, Any]:
    """Llama 3 rope scaling travels as llama.cpp's `rope_freqs.weight` tensor."""
    import mlx.core as mx

    rope = _rope_scaling(config)
    if rope is None or rope[0] != "llama3":
        return {}
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    factors = llama3_rope_factors(head_dim, float(config.get("rope_theta", 10000.0)), rope[1])
    return {"rope_freqs.weight": mx.array(factors)}


def _eos_ids(config: dict[str, Any]) -> list[int]:
    eos = config.get("eos_token_id")
    values = eos if isinstance(eos, list) else [eos]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def export_mlx_to_gguf(src_folder: Path, dest_file: Path, progress: ProgressCallback | None = None,
                       should_stop: StopCheck | None = None) -> Path:
    """Write the llama MLX folder `src_folder` as the new F16 GGUF `dest_file`.

    Raises:
        UserError: the folder cannot be exported (see `gguf_export_support`), or
            `dest_file` exists or cannot be written.
        Cancelled: `should_stop` returned True; nothing is left behind.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.gguf import permute_weights, translate_weight_names
    from mlx_lm.utils import dequantize_model, load_model

    from macllm_app.core.formats.gguf_reader import read_gguf_header

    report = monotonic(progress)
    stop = should_stop or (lambda: False)
    src, dest = Path(src_folder), Path(dest_file)
    reason = gguf_export_support(src)
    if reason is not None:
        raise UserError(f"{src}: cannot export to GGUF: {reason}")
    check_dest_file(dest)
    report(0.0, f"Loading {src.name}")
    model, config = load_model(src, lazy=True)
    model = dequantize_model(model)
    weights = dict(tree_flatten(model.parameters()))
    n_vocab = int(weights["model.embed_tokens.weight"].shape[0])
    try:
        meta = {**_model_metadata(config, src.name),
                **vocab_metadata(src, n_vocab, _eos_ids(config))}
    except VocabError as exc:
        raise UserError(f"{src}: cannot export to GGUF: {exc}") from None
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    # A folder that keeps GGUF's q/k order runs with traditional (interleaved) rope.
    permute = not config.get("rope_traditional", False)
    tensors: dict[str, Any] = {}
    for i, (name, weight) in enumerate(sorted(weights.items())):
        if stop():
            raise Cancelled
        w = weight
        if permute and name.endswith("self_attn.q_proj.weight"):
            w = permute_weights(w, n_head, n_head)
        elif permute and name.endswith("self_attn.k_proj.weight"):
            w = permute_weights(w, n_head, n_kv)
        w = w.astype(mx.float32 if "norm" in name else mx.float16)
        mx.eval(w)
        tensors[translate_weight_names(name)] = w
        report(0.05 + 0.75 * (i + 1) / len(weights), f"Converting {name}")
    weights.clear()
    tensors.update(_extra_tensors(config))
    report(0.8, f"Writing {dest.name}")
    with staged_file(dest, suffix=".partial.gguf") as tmp:
        mx.save_gguf(str(tmp), tensors, meta)
        if stop():
            raise Cancelled
        header = read_gguf_header(tmp)
        if (header.kv.get("general.architecture") != "llama"
                or len(header.tensors) != len(tensors)):
            raise ModelFileError(f"{dest.name}: the written file does not read back")
    log.info("exported %s to %s", src, dest)
    report(1.0, f"Exported to {dest}")
    return dest
