"""Validate LoRA adapters before any native code reads them.

Two forms exist. An mlx-lm adapter folder, as `mlx_lm.lora` writes it:
`adapter_config.json` (fine-tune type, rank, scale) and `adapters.safetensors`
(per adapted layer `<module>.lora_a` of (input_dims, r) and `<module>.lora_b`
of (r, output_dims); DoRA adds `<module>.m`; a full fine-tune holds plain
weights). And a llama.cpp LoRA adapter GGUF: `general.type` "adapter",
`adapter.type` "lora", `adapter.lora.alpha`, and `<base tensor>.lora_a` /
`.lora_b` pairs.

What the checks promise:
- one `ModelFileError` line naming the file and the problem, never a traceback;
- the GGUF check holds the adapter against its base model's header exactly as
  llama.cpp's loader does (`src/llama-adapter.cpp`: architecture, pairs, base
  tensors, shapes), and refuses value types on which llama.cpp would abort, so
  a wrong or broken adapter never reaches it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from macllm_app.core.errors import ModelFileError
from macllm_app.core.formats.gguf_reader import T_ARRAY, T_FLOAT32, T_UINT32, GGUFArray, GGUFHeader
from macllm_app.core.formats.inspect import check_gguf_file
from macllm_app.core.formats.safetensors_header import SafeTensor, read_safetensors_header

ADAPTER_WEIGHTS = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
FINE_TUNE_TYPES = ("lora", "dora", "full")
MAX_CONFIG_BYTES = 1 << 20
_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32"})
KEY_ALPHA = "adapter.lora.alpha"
KEY_ALORA_TOKENS = "adapter.alora.invocation_tokens"


@dataclass(frozen=True, slots=True)
class MLXAdapter:
    """An mlx-lm adapter folder that passed `read_mlx_adapter`.

    For LoRA and DoRA, `pairs` maps each adapted module (e.g.
    `model.layers.3.self_attn.q_proj`) to its (lora_a, lora_b) tensors.
    """

    folder: Path
    fine_tune_type: str
    num_layers: int
    rank: int | None
    scale: float | None
    tensors: tuple[SafeTensor, ...]
    pairs: dict[str, tuple[SafeTensor, SafeTensor]]

    @property
    def weights_path(self) -> Path:
        return self.folder / ADAPTER_WEIGHTS


def _fail(path: Path, problem: str) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / ADAPTER_CONFIG
    if not path.is_file():
        raise _fail(folder, f"no {ADAPTER_CONFIG} (not an mlx-lm adapter folder)")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise _fail(path, f"larger than {MAX_CONFIG_BYTES >> 20} MB")
        config = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _fail(path, "is not valid JSON") from None
    except OSError as exc:
        raise _fail(path, f"cannot read ({exc.strerror or exc})") from None
    if not isinstance(config, dict):
        raise _fail(path, "is not a JSON object")
    return config


def _lora_parameters(cfg_path: Path, config: dict[str, Any]) -> tuple[int, float]:
    """The rank and scale of `lora_parameters` (mlx-lm also requires a dropout)."""
    params = config.get("lora_parameters")
    if not isinstance(params, dict):
        raise _fail(cfg_path, "lora_parameters is missing or not an object")
    rank, scale, dropout = params.get("rank"), params.get("scale"), params.get("dropout")
    if not _is_int(rank) or rank <= 0:
        raise _fail(cfg_path, "lora_parameters.rank is missing or not a positive integer")
    if not _is_number(scale):
        raise _fail(cfg_path, "lora_parameters.scale is missing or not a number")
    if not _is_number(dropout) or not 0 <= dropout < 1:
        raise _fail(cfg_path, "lora_parameters.dropout is missing or not in [0, 1)")
    return int(rank), float(scale)


def read_mlx_adapter(folder: Path) -> MLXAdapter:
    """Check an mlx-lm adapter folder without loading its weights (ModelFileError)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise _fail(folder, "is not an adapter folder (adapters.safetensors and "
                            "adapter_config.json)")
    config = _read_config(folder)
    cfg_path = folder / ADAPTER_CONFIG
    kind = config.get("fine_tune_type", "lora")
    if kind not in FINE_TUNE_TYPES:
        raise _fail(cfg_path, f"unknown fine_tune_type {kind!r} (expected lora, dora or full)")
    num_layers = config.get("num_layers")
    if not _is_int(num_layers):
        raise _fail(cfg_path, "num_layers is missing or not an integer")
    rank, scale = (None, None) if kind == "full" else _lora_parameters(cfg_path, config)
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise _fail(folder, f"no {ADAPTER_WEIGHTS} (not a trained adapter)")
    tensors, _meta = read_safetensors_header(weights)
    if not tensors:
        raise _fail(weights, "holds no tensors")
    for t in tensors:
        if t.dtype not in _FLOAT_DTYPES:
            raise _fail(weights, f"tensor {t.name!r} is {t.dtype} (expected F16, BF16 or F32)")
    pairs = {} if kind == "full" else _lora_pairs(weights, tensors, kind, rank or 0)
    return MLXAdapter(folder=folder, fine_tune_type=kind, num_layers=int(num_layers), rank=rank,
                      scale=scale, tensors=tuple(tensors), pairs=pairs)


def _lora_pairs(weights: Path, tensors: list[SafeTensor], kind: str,
                rank: int) -> dict[str, tuple[SafeTensor, SafeTensor]]:
    """(lora_a, lora_b) per module: lora_a (in, r), lora_b (r, out), r the config's rank."""
    found: dict[str, dict[str, SafeTensor]] = {}
    leaves = ("lora_a", "lora_b", "m") if kind == "dora" else ("lora_a", "lora_b")
    for t in tensors:
        module, _, leaf = t.name.rpartition(".")
        if not module or leaf not in leaves:
            raise _fail(weights, f"unexpected tensor {t.name!r} in a {kind} adapter")
        found.setdefault(module, {})[leaf] = t
    pairs: dict[str, tuple[SafeTensor, SafeTensor]] = {}
    for module, parts in sorted(found.items()):
        a, b = parts.get("lora_a"), parts.get("lora_b")
        if a is None or b is None:
            raise _fail(weights, f"{module} lacks its lora_a or lora_b")
        if len(a.shape) != 2 or len(b.shape) != 2:
            raise _fail(weights, f"{module}: lora_a and lora_b must be matrices")
        if a.shape[1] != rank or b.shape[0] != rank:
            raise _fail(weights, f"{module}: lora_a {list(a.shape)} and lora_b "
                                 f"{list(b.shape)} do not have the configured rank {rank}")
        if kind == "dora" and parts.get("m") is None:
            raise _fail(weights, f"{module} lacks its DoRA magnitude m")
        pairs[module] = (a, b)
    return pairs


# -- llama.cpp LoRA GGUF ------------------------------------------------------

def check_lora_gguf(path: Path, base: GGUFHeader | None = None) -> GGUFHeader:
    """Check a llama.cpp LoRA adapter GGUF, and with `base` (the base model's header)
    that llama.cpp will accept it for that model. ModelFileError, one line."""
    path = Path(path)
    if path.is_dir():
        what = "an mlx-lm adapter folder" if (path / ADAPTER_CONFIG).is_file() else "a folder"
        raise _fail(path, f"is {what}; llama.cpp needs a LoRA adapter GGUF file "
                          "(export the adapter for llama.cpp first)")
    header = check_gguf_file(path)
    kv, label = header.kv, path.name

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"{label}: {problem}")

    if kv.get("general.type") != "adapter" or kv.get("adapter.type") != "lora":
        raise fail("not a LoRA adapter (general.type must be 'adapter', adapter.type 'lora')")
    arch = kv.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise fail("has no general.architecture")
    if KEY_ALPHA in kv and header.kv_types.get(KEY_ALPHA) != T_FLOAT32:
        raise fail(f"{KEY_ALPHA} must be a float32")
    tokens = kv.get(KEY_ALORA_TOKENS)
    if KEY_ALORA_TOKENS in kv and not (header.kv_types.get(KEY_ALORA_TOKENS) == T_ARRAY
                                       and isinstance(tokens, GGUFArray)
                                       and tokens.elem_type == T_UINT32):
        raise fail(f"{KEY_ALORA_TOKENS} must be an array of uint32")
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for t in header.tensors:
        for leaf in ("lora_a", "lora_b"):
            if t.name.endswith("." + leaf):
                pairs.setdefault(t.name[:-len(leaf) - 1], {})[leaf] = t.dims
                break
        else:
            if not t.name.endswith("_norm.weight"):  # llama.cpp skips those; it refuses others
                raise fail(f"unexpected tensor {t.name!r} (expected .lora_a / .lora_b pairs)")
    if not pairs:
        raise fail("holds no LoRA tensors")
    for name, parts in pairs.items():
        a, b = parts.get("lora_a"), parts.get("lora_b")
        if a is None or b is None:
            raise fail(f"the LoRA pair for {name!r} lacks its lora_a or lora_b")
        if len(a) != 2 or len(b) != 2:
            raise fail(f"the LoRA pair for {name!r} is not two matrices")
        if not name.endswith("token_embd.weight") and a[1] != b[0]:
            raise fail(f"{name}.lora_a {list(a)} and .lora_b {list(b)} have different ranks")
    if base is not None:
        _check_fits(header, pairs, base, fail)
    return header


def _check_fits(header: GGUFHeader, pairs: dict[str, dict[str, tuple[int, ...]]],
                base: GGUFHeader, fail: Callable[[str], ModelFileError]) -> None:
    """llama.cpp's checks of an adapter against its model, in ggml order (ne[0] first)."""
    arch, base_arch = header.kv.get("general.architecture"), base.kv.get("general.architecture")
    if arch != base_arch:
        raise fail(f"an adapter for {arch} models, but {base.path.name} is {base_arch}")
    shapes = {t.name: t.dims for t in base.tensors}
    for name, parts in sorted(pairs.items()):
        w = shapes.get(name)
        if w is None:
            raise fail(f"{name} does not exist in {base.path.name} (an adapter for another "
                       "model?)")
        a, b = parts["lora_a"], parts["lora_b"]
        if name.endswith("token_embd.weight"):  # A and B are swapped for the embedding
            fits = len(w) == 2 and w[0] == b[1] and w[1] == a[1]
        else:
            fits = len(w) == 2 and w[0] == a[0] and w[1] == b[1]
        if not fits:
            raise fail(f"{name} is {list(w)} in {base.path.name} but the adapter's pair is "
                       f"{list(a)} x {list(b)} (an adapter for another model?)")


def adapter_label(path: str | Path) -> str:
    """How a model with this adapter is named: "<model> + <label>" (a fine-tune run's
    adapter folder by its run, a file by its stem)."""
    adapter = Path(path)
    if adapter.suffix.lower() == ".gguf":
        return adapter.stem
    return adapter.parent.name if adapter.name == "adapter" else adapter.name

