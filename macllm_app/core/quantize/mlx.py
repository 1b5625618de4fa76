"""MLX quantization through mlx-lm: 2 to 8 bits, group sizes 32/64/128, the affine,
mxfp4, nvfp4 and mxfp8 modes, mlx-lm's mixed recipes, and a learned mix (mlx-lm's
dynamic quantization) calibrated on the text MacLLM ships, offline.

`plan_mlx_quantize` checks first, reading only config and headers: a float source
(an MLX folder, or an F16/F32/BF16 GGUF made into one by our converter on the way),
a mode's fixed bits and group size, a group size that divides every quantized
layer's input, a free destination and disk. `mlx_quantize_into_library` is the job:
it writes to a staging folder, renames it when complete, and adds the model to the
library with its provenance.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from macllm_app.core.convert.staging import check_dest_folder, staged_folder
from macllm_app.core.errors import Cancelled, UserError
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.formats.metadata import ModelMetadata
from macllm_app.core.library.conversions import add_to_library, check_space
from macllm_app.core.progress import span
from macllm_app.core.quantize.mlx_options import (
    BITS,
    FLOAT_GGUF,
    GROUP_SIZES,
    MODE_LAYOUT,
    MODES,
    RECIPES,
    float_kind,
)
from macllm_app.core.resources import CALIBRATION_TEXT, read_text
from macllm_app.core.types import ProgressCallback, StopCheck

MLX_QUANTIZE_TARGET = f"{__name__}:mlx_quantize_into_library"
MLX_QUANTIZE_TITLE = "Quantizing for MLX"
DYNAMIC_SEQUENCE = 256  # tokens per calibration sample of the learned mix


@dataclass(frozen=True, slots=True)
class MLXQuantizePlan:
    source: str
    dest: str
    bits: int
    group_size: int
    mode: str = "affine"
    recipe: str | None = None
    dynamic_bpw: float | None = None  # a learned mix of bits around this many bits a weight
    expected_bytes: int = 0

    def label(self) -> str:
        if self.dynamic_bpw:
            return f"dynamic {self.dynamic_bpw:g} bpw"
        if self.recipe:
            return self.recipe
        return f"{self.mode} {self.bits}-bit g{self.group_size}"


def _layer_inputs(meta: ModelMetadata, source: Path) -> dict[str, int]:
    """The input widths of the model's linear layers (what a group size must divide)."""
    widths = {"hidden size": meta.embedding_length or 0}
    if meta.n_heads and meta.head_dim:
        widths["attention output"] = meta.n_heads * meta.head_dim
    if source.is_dir():
        config = json.loads((source / "config.json").read_text())
        widths["MLP"] = int(config.get("intermediate_size") or 0)
    else:
        from macllm_app.core.formats.gguf_reader import read_gguf_header

        value = read_gguf_header(source).kv.get(f"{meta.architecture}.feed_forward_length")
        widths["MLP"] = value if isinstance(value, int) else 0
    return {name: width for name, width in widths.items() if width}


def _check_mix_target(target: float, bits: int, group_size: int, kind: str) -> None:
    """mlx-lm counts bits per weight with each group's scale and bias in the source's
    float type, so a mix of `bits` and `bits + 2` lands between these two."""
    overhead = 2 * (32 if kind == "F32" else 16) / group_size
    low, high = bits + overhead, bits + 2 + overhead
    if not low < target < high:
        raise UserError(f"A learned mix of {bits} and {bits + 2} bits in groups of {group_size} "
                        f"weighs {low:g} to {high:g} bits a weight ({kind} scales); "
                        f"{target:g} is outside.")


def plan_mlx_quantize(src: str | Path, dest: str | Path, bits: int = 4, group_size: int = 64,
                      mode: str = "affine", recipe: str | None = None,
                      dynamic_bpw: float | None = None) -> MLXQuantizePlan:
    source, target = Path(src).expanduser(), Path(dest).expanduser()
    if mode not in MODES:
        raise UserError(f"Unknown MLX quantization mode {mode!r}: choose one of "
                        f"{', '.join(MODES)}.")
    if mode in MODE_LAYOUT:
        fixed = MODE_LAYOUT[mode]
        if (bits, group_size) != fixed:
            raise UserError(f"{mode} stores {fixed[0]} bits in groups of {fixed[1]}; "
                            f"{bits} bits in groups of {group_size} cannot be {mode}.")
    else:
        if bits not in BITS:
            raise UserError(f"MLX quantizes to {', '.join(map(str, BITS))} bits, not {bits}.")
        if group_size not in GROUP_SIZES:
            raise UserError(f"MLX groups {', '.join(map(str, GROUP_SIZES))} weights, "
                            f"not {group_size}.")
    if recipe is not None and (recipe not in RECIPES or mode != "affine"):
        raise UserError(f"The mixed recipes ({', '.join(RECIPES)}) are affine; "
                        f"{recipe!r} with {mode} is not one of them.")
    if not source.exists():
        raise UserError(f"{source}: no such file or folder")
    meta = inspect_model(source)
    if meta.format == "mlx" and "bit" in meta.quantization:
        raise UserError(f"{source.name} is already quantized ({meta.quantization}); MLX "
                        "quantizes a float model: start from its F16 or BF16 folder.")
    if meta.format == "gguf" and meta.quantization not in FLOAT_GGUF:
        raise UserError(f"{source.name} is a {meta.quantization} GGUF; MLX quantizes a float "
                        "model: start from an F16, BF16 or F32 GGUF.")
    if dynamic_bpw is not None:
        _check_mix_target(dynamic_bpw, bits, group_size, float_kind(meta))
    for name, width in _layer_inputs(meta, source).items():
        if width % group_size:
            raise UserError(f"A group size of {group_size} does not divide {source.name}'s "
                            f"{name} ({width}): choose "
                            f"{', '.join(str(g) for g in GROUP_SIZES if width % g == 0)}.")
    check_dest_folder(target)
    expected = int(meta.n_params * (bits + 32 / group_size) / 8)
    check_space(target.parent, expected + (2 * meta.n_params if meta.format == "gguf" else 0))
    return MLXQuantizePlan(str(source), str(target), bits, group_size, mode, recipe,
                           dynamic_bpw, expected)


# -- in the job process ----------------------------------------------------------------
def _calibration(tokenizer: Any) -> Any:
    import mlx.core as mx

    tokens = tokenizer.encode(read_text(CALIBRATION_TEXT), add_special_tokens=False)
    usable = len(tokens) // DYNAMIC_SEQUENCE * DYNAMIC_SEQUENCE
    if usable == 0:
        raise UserError("The calibration text is too short for one sample.")
    return mx.array(tokens[:usable]).reshape(-1, DYNAMIC_SEQUENCE)


def _dynamic_predicate(model: Any, tokenizer: Any, plan: MLXQuantizePlan) -> Any:
    """mlx-lm's learned mix: each layer's sensitivity (from the KL divergence of a
    quantized copy on the calibration text), then the threshold that meets the
    bits-per-weight target; the most sensitive layers get two more bits."""
    from mlx_lm.quant.dynamic_quant import estimate_sensitivities, estimate_threshold

    high = plan.bits + 2
    data = _calibration(tokenizer)
    sensitivities = dict(estimate_sensitivities(model, data, plan.bits, plan.group_size, high,
                                                plan.group_size, batch_size=1))
    threshold = estimate_threshold(model, sensitivities, plan.dynamic_bpw, plan.bits,
                                   plan.group_size, high, plan.group_size)

    def predicate(path: str, module: Any, _config: Any = None) -> bool | dict[str, int]:
        if not hasattr(module, "to_quantized"):
            return False
        if sensitivities.get(path, 0.0) > threshold:
            return {"bits": high, "group_size": plan.group_size}
        return True

    return predicate


def mlx_quantize_into_library(plan: MLXQuantizePlan, progress: ProgressCallback,
                              should_stop: StopCheck) -> dict[str, Any]:
    from mlx_lm.utils import compute_bits_per_weight, load, quantize_model, save

    source, dest = Path(plan.source), Path(plan.dest)
    with staged_folder(dest) as staging:
        folder = source
        if source.is_file():
            from macllm_app.core.convert.gguf_to_mlx import convert_gguf_to_mlx

            folder = convert_gguf_to_mlx(source, staging / "float", progress=span(
                progress, 0.0, 0.3), should_stop=should_stop)
        if should_stop():
            raise Cancelled
        progress(0.35, "Loading the model")
        loaded: Any = load(str(folder), return_config=True, lazy=True)
        model, tokenizer, config = loaded
        predicate: Any = plan.recipe
        if plan.recipe:
            from mlx_lm.convert import mixed_quant_predicate_builder

            predicate = mixed_quant_predicate_builder(plan.recipe, model, plan.group_size)
        elif plan.dynamic_bpw:
            progress(0.45, "Measuring each layer's sensitivity on the calibration text")
            predicate = _dynamic_predicate(model, tokenizer, plan)
        if should_stop():
            raise Cancelled
        progress(0.7, f"Quantizing ({plan.label()})")
        with contextlib.redirect_stdout(sys.stderr):  # mlx-lm prints; stdout is the caller's
            model, config = quantize_model(model, config, plan.group_size, plan.bits,
                                           mode=plan.mode, quant_predicate=predicate)
        bits_per_weight = float(compute_bits_per_weight(model))
        progress(0.85, "Writing the model")
        out = staging / "quantized"
        save(out, str(folder), model, tokenizer, config)
        for item in out.iterdir():
            item.rename(staging / item.name)
        out.rmdir()
        if folder != source:
            shutil.rmtree(folder)
        if should_stop():
            raise Cancelled
    progress(1.0, f"Quantized ({plan.label()}, {bits_per_weight:.2f} bits per weight)")
    return add_to_library(dest, {
        "quantized_from": str(source), "quantization": plan.label(),
        "bits_per_weight": f"{bits_per_weight:.3f}",
        "made_at": datetime.now(UTC).isoformat(),
        "tool": f"mlx-lm {metadata.version('mlx-lm')}", "options": repr(asdict(plan))})
