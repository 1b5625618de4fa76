"""Export an mlx-lm LoRA adapter as a llama.cpp LoRA adapter GGUF.

No official converter exists (mlx-lm #197, llama.cpp #10551); the mapping is:

- mlx-lm's `LoRALinear` computes `W x + scale * (x @ lora_a) @ lora_b` with
  `lora_a` (input_dims, r) and `lora_b` (r, output_dims); llama.cpp computes
  `W x + (alpha / r) * B (A x)` (`build_lora_mm`), A = `<tensor>.lora_a` of
  ggml shape [input_dims, r] and B = `<tensor>.lora_b` of [r, output_dims].
  In row-major terms those are lora_a.T and lora_b.T, and `adapter.lora.alpha`
  is mlx-lm's scale times the rank.
- tensors are named after the base tensor as llama.cpp names it
  (`model.layers.0.self_attn.q_proj` -> `blk.0.attn_q.weight`);
- a llama GGUF stores q/k rows permuted for interleaved rotary embeddings (as
  our MLX -> GGUF export writes them), so the q/k deltas get the same
  permutation on their output rows, which are lora_b.T's rows.

What it promises:
- the adapter folder and its fit to the base model (layers, shapes, heads) are
  checked before anything is written; DoRA adapters and full fine-tunes, which
  have no llama.cpp adapter form, are refused with a one-line `UserError`;
- the file is written under a temporary name, checked as llama.cpp will check
  it, and renamed into place; an existing file is never overwritten;
- progress reports and a cooperative cancel that leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from macllm_app.core.convert.llama_weights import module_name
from macllm_app.core.convert.staging import check_dest_file, staged_file
from macllm_app.core.errors import Cancelled, ModelFileError, UserError
from macllm_app.core.formats.gguf_reader import GGUFHeader
from macllm_app.core.formats.lora_adapter import MLXAdapter, check_lora_gguf, read_mlx_adapter
from macllm_app.core.progress import monotonic
from macllm_app.core.types import ProgressCallback, StopCheck

log = logging.getLogger("macllm.finetune")
#: mlx-lm model types whose GGUF form is llama.cpp's `llama` architecture.
LLAMA_MODEL_TYPES = frozenset({"llama", "mistral"})
#: The llama linear layers LoRA adapts, by their llama.cpp names.
LORA_TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
_REFUSED = {
    "dora": "is a DoRA adapter, which llama.cpp cannot apply",
    "full": "holds a full fine-tune, not an adapter",
}


@dataclass(frozen=True, slots=True)
class LlamaBase:
    """What the export needs of the base model: its adapted weights' (out, in) shapes
    by GGUF name, and the head counts of the q/k row permutation."""

    label: str
    n_layer: int
    n_head: int
    n_head_kv: int
    permute_qk: bool
    shapes: dict[str, tuple[int, int]]
    header: GGUFHeader | None = None  # when the base is a GGUF file


def _positive(value: Any, what: str, label: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{label}: {what} is missing or not a positive integer")
    return value


def _base_from_mlx(folder: Path) -> LlamaBase:
    from macllm_app.core.formats.mlx_folder import validate_mlx_folder

    validate_mlx_folder(folder)
    config = json.loads((folder / "config.json").read_bytes())
    label = folder.name
    if config.get("model_type") not in LLAMA_MODEL_TYPES:
        raise UserError(f"{label}: its model type is {config.get('model_type')!r}; llama.cpp "
                        "adapters are exported for llama models")
    hidden = _positive(config.get("hidden_size"), "hidden_size", label)
    n_head = _positive(config.get("num_attention_heads"), "num_attention_heads", label)
    n_kv = _positive(config.get("num_key_value_heads", n_head), "num_key_value_heads", label)
    head_dim = _positive(config.get("head_dim", hidden // n_head), "head_dim", label)
    ffn = _positive(config.get("intermediate_size"), "intermediate_size", label)
    n_layer = _positive(config.get("num_hidden_layers"), "num_hidden_layers", label)
    q, kv = n_head * head_dim, n_kv * head_dim
    dims = {"attn_q": (q, hidden), "attn_k": (kv, hidden), "attn_v": (kv, hidden),
            "attn_output": (hidden, q), "ffn_gate": (ffn, hidden), "ffn_up": (ffn, hidden),
            "ffn_down": (hidden, ffn)}
    shapes = {f"blk.{i}.{t}.weight": dims[t] for i in range(n_layer) for t in LORA_TARGETS}
    # A folder that keeps GGUF's q/k order runs with traditional rope (see mlx_to_gguf).
    return LlamaBase(label, n_layer, n_head, n_kv, not config.get("rope_traditional", False),
                     shapes)


def _base_from_gguf(path: Path) -> LlamaBase:
    from macllm_app.core.formats.inspect import check_gguf_file

    header = check_gguf_file(path)
    kv, label = header.kv, path.name
    if kv.get("general.type") == "adapter":
        raise UserError(f"{label} is an adapter, not a base model")
    if kv.get("general.architecture") != "llama":
        raise UserError(f"{label}: its architecture is {kv.get('general.architecture')!r}; "
                        "llama.cpp adapters are exported for llama models")
    n_head = _positive(kv.get("llama.attention.head_count"), "llama.attention.head_count",
                       label)
    n_kv = _positive(kv.get("llama.attention.head_count_kv", n_head),
                     "llama.attention.head_count_kv", label)
    n_layer = _positive(kv.get("llama.block_count"), "llama.block_count", label)
    shapes = {t.name: (t.dims[1], t.dims[0]) for t in header.tensors
              if t.name.startswith("blk.") and len(t.dims) == 2}
    return LlamaBase(label, n_layer, n_head, n_kv, True, shapes, header)


def read_base(base: Path) -> LlamaBase:
    """The base model's facts from an MLX folder (its config.json) or a GGUF file (its
    metadata and tensor shapes). A GGUF base is taken to come from a standard
    (Hugging Face order) model, as every llama GGUF converter writes it."""
    base = Path(base)
    try:
        return _base_from_mlx(base) if base.is_dir() else _base_from_gguf(base)
    except (OSError, ValueError) as exc:
        raise UserError(f"{base}: cannot read the base model ({exc})") from None


def _plan(adapter: MLXAdapter, base: LlamaBase) -> dict[str, tuple[str, int]]:
    """GGUF base tensor name -> (mlx-lm module, heads of its q/k row permutation or 0)."""
    label = adapter.folder.name
    names: dict[str | None, str] = {
        module_name(f"blk.{i}.{t}", base.n_layer): f"blk.{i}.{t}.weight"
        for i in range(base.n_layer) for t in LORA_TARGETS}
    heads = {"self_attn.q_proj": base.n_head, "self_attn.k_proj": base.n_head_kv}
    plan: dict[str, tuple[str, int]] = {}
    for module, (a, b) in adapter.pairs.items():
        gguf = names.get(module)
        if gguf is None:
            raise UserError(f"{label} adapts {module}, which is not one of the llama layers "
                            f"of {base.label} that llama.cpp adapters support")
        want = base.shapes.get(gguf)
        got = (b.shape[1], a.shape[0])
        if want != got:
            have = "missing" if want is None else f"{want[0]}x{want[1]}"
            raise UserError(f"{label} does not fit {base.label}: {module} is "
                            f"{got[0]}x{got[1]} in the adapter, {have} in the base model "
                            "(trained on another model?)")
        n_head = next((h for k, h in heads.items() if module.endswith(k)), 0)
        n_head = n_head if base.permute_qk else 0
        if n_head and got[0] % (2 * n_head):
            raise UserError(f"{base.label}: {module}'s {got[0]} rows do not split into "
                            f"{n_head} heads")
        plan[gguf] = (module, n_head)
    return plan


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order for interleaved rotary embeddings (mlx-lm's
    `permute_weights`, the inverse of `llama_weights.unpermute_rows`)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2) \
        .reshape(w.shape)


def export_llama_adapter(adapter_dir: Path, base: Path, dest: Path,
                         progress: ProgressCallback | None = None,
                         should_stop: StopCheck | None = None) -> Path:
    """Write the mlx-lm LoRA adapter folder `adapter_dir` as the new llama.cpp LoRA
    adapter GGUF `dest`, for `base`: the base model as an MLX folder or a GGUF file.

    Raises:
        UserError: the adapter is not a LoRA adapter (DoRA, full fine-tune), is broken,
            or does not fit the base model; `dest` exists or cannot be written.
        Cancelled: `should_stop` returned True; nothing is left behind.
    """
    import gguf
    import mlx.core as mx

    report = monotonic(progress)
    stop = should_stop or (lambda: False)
    src, dest = Path(adapter_dir), Path(dest)
    check_dest_file(dest)
    adapter = read_mlx_adapter(src)
    if adapter.fine_tune_type in _REFUSED:
        raise UserError(f"{src.name} {_REFUSED[adapter.fine_tune_type]}: fuse it into the "
                        "model and export the fused model to GGUF instead.")
    assert adapter.rank is not None and adapter.scale is not None
    if adapter.scale == 0:
        raise UserError(f"{src.name}: its LoRA scale is 0 (the adapter changes nothing)")
    info = read_base(base)
    plan = _plan(adapter, info)
    report(0.0, f"Reading {src.name}")
    try:
        weights: Any = mx.load(str(adapter.weights_path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelFileError(f"{adapter.weights_path}: cannot read ({exc})") from None
    tensors: dict[str, np.ndarray] = {}
    for i, (name, (module, n_head)) in enumerate(sorted(plan.items())):
        if stop():
            raise Cancelled
        lora_a = np.array(weights[f"{module}.lora_a"].astype(mx.float32))
        lora_b = np.array(weights[f"{module}.lora_b"].astype(mx.float32))
        a, b = lora_a.T, lora_b.T  # (r, in) and (out, r): ggml [in, r] and [r, out]
        if n_head:
            b = permute_rows(b, n_head)
        tensors[f"{name}.lora_a"] = np.ascontiguousarray(a)
        tensors[f"{name}.lora_b"] = np.ascontiguousarray(b)
        report(0.8 * (i + 1) / len(plan), f"Converting {module}")
    weights.clear()
    alpha = adapter.scale * adapter.rank
    report(0.8, f"Writing {dest.name}")
    with staged_file(dest, suffix=".partial.gguf") as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch="llama")
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(src.name)
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        if stop():
            raise Cancelled
        header = check_lora_gguf(tmp, info.header)
        if {t.name for t in header.tensors} != set(tensors):
            raise ModelFileError(f"{dest.name}: the written file does not read back")
    log.info("exported adapter %s (%d layers, alpha %g) to %s", src, len(plan), alpha, dest)
    report(1.0, f"Exported to {dest}")
    return dest
