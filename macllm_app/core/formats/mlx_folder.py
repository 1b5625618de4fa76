"""Validate an MLX / Hugging Face model folder and read its metadata.

A folder is refused when it could run code (Python files, `auto_map` or
`model_file` in a config, pickle weights) or links outside itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from macllm_app.core.errors import ModelFileError
from macllm_app.core.formats.metadata import ModelMetadata
from macllm_app.core.formats.safetensors_header import SafeTensor, read_safetensors_header

CODE_SUFFIXES = frozenset({".py", ".pyc", ".pyo", ".so", ".dylib"})
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"})
CODE_KEYS = frozenset({"auto_map", "model_file"})
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tiktoken.model", "vocab.json")
# Large vocabularies: token strings are data, not config keys.
_NOT_CONFIG = frozenset({"tokenizer.json", "vocab.json", "model.safetensors.index.json"})
MAX_CONFIG_BYTES = 16 << 20
MAX_FILES = 5000


def _fail(path: Path, problem: str) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}")


def _walk(folder: Path, allowed_root: Path) -> list[Path]:
    """Every file under folder; refuse symlinks that resolve outside allowed_root."""
    root = allowed_root.resolve()
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            if p.is_symlink():
                target = p.resolve()
                if not target.exists():
                    raise _fail(p, "broken symbolic link")
                if not target.is_relative_to(root):
                    raise _fail(p, "symbolic link points outside the model folder")
                if target.is_dir():
                    raise _fail(p, "symbolic link to a folder (not allowed in a model folder)")
        files.extend(Path(dirpath) / n for n in filenames)
        if len(files) > MAX_FILES:
            raise _fail(folder, f"more than {MAX_FILES} files (not a model folder)")
    return files


def _keys_deep(obj: Any, depth: int = 0) -> set[str]:
    if depth > 32:
        return set()
    if isinstance(obj, dict):
        keys = set(obj)
        for v in obj.values():
            keys |= _keys_deep(v, depth + 1)
        return keys
    if isinstance(obj, list):
        out: set[str] = set()
        for v in obj:
            out |= _keys_deep(v, depth + 1)
        return out
    return set()


def _load_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise _fail(path, f"config file larger than {MAX_CONFIG_BYTES >> 20} MB")
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(path, "is not valid JSON") from exc
    except OSError as exc:
        raise _fail(path, f"cannot read ({exc.strerror or exc})") from exc


def validate_mlx_folder(folder: Path, allowed_root: Path | None = None) -> ModelMetadata:
    """Check an MLX/HF folder and return its metadata, or raise ModelFileError.

    `allowed_root` widens where symlinks may point (a Hugging Face cache repo
    folder, whose snapshots link into ../../blobs).
    """
    if not folder.is_dir():
        raise _fail(folder, "is not a folder")
    files = _walk(folder, allowed_root or folder)
    for f in files:
        suffix = f.suffix.lower()
        if suffix in CODE_SUFFIXES:
            raise _fail(f, "model folders must not contain code")
        if suffix in PICKLE_SUFFIXES:
            raise _fail(f, "pickle weights can run code; only safetensors are accepted")
    for f in files:
        if f.suffix.lower() == ".json" and f.name not in _NOT_CONFIG:
            found = CODE_KEYS & _keys_deep(_load_json(f))
            if found:
                raise _fail(f, f"'{sorted(found)[0]}' asks to run custom code; refused")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise _fail(folder, "no config.json (not an MLX model folder)")
    config = _load_json(config_path)
    if not isinstance(config, dict):
        raise _fail(config_path, "is not a JSON object")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise _fail(config_path, "has no model_type")
    weights = sorted(f for f in files if f.suffix == ".safetensors")
    if not weights:
        raise _fail(folder, "no .safetensors weights")
    if not any((folder / t).is_file() for t in TOKENIZER_FILES):
        raise _fail(folder, "no tokenizer (tokenizer.json or tokenizer.model)")
    tensors: list[SafeTensor] = []
    for w in weights:
        tensors.extend(read_safetensors_header(w)[0])
    return _metadata(folder, config, tensors, sum(f.stat().st_size for f in files))


def _cfg_int(config: dict[str, Any], *keys: str) -> int | None:
    for src in (config, config.get("text_config")):
        if not isinstance(src, dict):
            continue
        for k in keys:
            v = src.get(k)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                return v
    return None


def _metadata(folder: Path, config: dict[str, Any], tensors: list[SafeTensor],
              size: int) -> ModelMetadata:
    quant = config.get("quantization") or config.get("quantization_config")
    bits = quant.get("bits") if isinstance(quant, dict) else None
    names = {t.name for t in tensors}
    n_params = 0
    dtypes: dict[str, int] = {}
    for t in tensors:
        count = 1
        for d in t.shape:
            count *= d
        packed = t.dtype == "U32" and t.name.endswith(".weight") and \
            t.name[: -len(".weight")] + ".scales" in names
        if packed and isinstance(bits, int) and bits > 0:
            count = count * 32 // bits
        if not t.name.endswith((".scales", ".biases")):
            n_params += count
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + 1
    if isinstance(bits, int):
        group = quant.get("group_size") if isinstance(quant, dict) else None
        quantization = f"{bits}-bit" + (f" (group {group})" if group else "")
    else:
        quantization = str(config.get("torch_dtype") or config.get("dtype") or "unknown")
    n_heads = _cfg_int(config, "num_attention_heads", "n_head")
    hidden = _cfg_int(config, "hidden_size", "n_embd", "d_model")
    tok_cfg = folder / "tokenizer_config.json"
    has_template = any((folder / n).is_file() for n in ("chat_template.jinja",
                                                        "chat_template.json"))
    if not has_template and tok_cfg.is_file():
        tc = _load_json(tok_cfg)
        has_template = isinstance(tc, dict) and bool(tc.get("chat_template"))
    return ModelMetadata(
        path=str(folder),
        format="mlx",
        name=folder.name,
        architecture=str(config["model_type"]),
        n_params=n_params,
        quantization=quantization,
        tensor_types=dtypes,
        context_length=_cfg_int(config, "max_position_embeddings", "n_positions",
                                "max_sequence_length"),
        has_chat_template=has_template,
        size_bytes=size,
        engines=("mlx",),
        n_layers=_cfg_int(config, "num_hidden_layers", "n_layer", "num_layers"),
        embedding_length=hidden,
        n_heads=n_heads,
        n_kv_heads=_cfg_int(config, "num_key_value_heads") or n_heads,
        head_dim=_cfg_int(config, "head_dim") or (
            hidden // n_heads if hidden and n_heads else None),
        vocab_size=_cfg_int(config, "vocab_size"),
    )
