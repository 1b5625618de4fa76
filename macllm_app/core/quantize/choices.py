"""What a model can be quantized to, on each engine, with each choice's bits per weight,
expected size and whether it fits this machine; and the guide from this machine's
memory to a variant, backed by measured quality where there is some.

The Quantize pane lists these; everything here reads headers and numbers only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from macllm_app.core.formats.metadata import ModelMetadata
from macllm_app.core.hardware.fit import Verdict, estimate, recommend_quant, shape_of
from macllm_app.core.quantize.llama_types import LLAMA_TYPES, LlamaType
from macllm_app.core.quantize.mlx_options import BITS, MODE_LAYOUT, RECIPES, float_bits
from macllm_app.core.types import EngineName
from macllm_app.core.units import human_size

#: Types worth listing for everyday use (the rest are listed after them).
COMMON_LLAMA = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "IQ4_XS", "Q3_K_M", "Q2_K")
#: mlx-lm's recipes: the share of weights at the high bits is about a quarter.
RECIPE_BITS = {"mixed_2_6": (2, 6), "mixed_3_4": (3, 4), "mixed_3_6": (3, 6),
               "mixed_4_6": (4, 6)}
SEED_ADVICE = {"Q4": "Q4_K_M", "Q8": "Q8_0", "F16-Q8": "Q8_0", "F16": "F16",
               "F16 or Q8": "Q8_0"}


@dataclass(frozen=True, slots=True)
class QuantChoice:
    engine: EngineName
    name: str                 # "Q4_K_M", "4-bit", "mxfp4", "mixed_3_6", "learned 4-6 bit"
    bits_per_weight: float
    expected_bytes: int
    fit: Verdict = "fits"
    note: str = ""            # why it is special: needs an importance matrix, ...
    needs_imatrix: bool = False
    bits: int = 0             # MLX: the bits, mode and recipe the plan takes
    mode: str = "affine"
    recipe: str | None = None
    learned: bool = False


def _llama(kind: LlamaType, n_params: int) -> QuantChoice:
    note = "needs an importance matrix" if kind.needs_imatrix else {
        "ternary": "for ternary (BitNet-style) models", "fp4": "for mixture-of-experts models",
    }.get(kind.family, "")
    return QuantChoice("llama.cpp", kind.name, kind.bits_per_weight,
                       kind.expected_bytes(n_params), note=note,
                       needs_imatrix=kind.needs_imatrix)


def _mlx(n_params: int, group_size: int, scale_bits: int) -> list[QuantChoice]:
    def _mlx_bpw(bits: int, group: int) -> float:
        return bits + 2 * scale_bits / group

    def sized(name: str, bpw: float, **kw: Any) -> QuantChoice:
        return QuantChoice("mlx", name, round(bpw, 2), int(n_params * bpw / 8), **kw)

    rows = [sized(f"{bits}-bit", _mlx_bpw(bits, group_size), bits=bits)
            for bits in sorted(BITS, reverse=True)]
    for mode, (bits, group) in MODE_LAYOUT.items():
        rows.append(sized(mode, bits + 8 / group, bits=bits, mode=mode,
                          note=f"microscaling: {bits} bits, groups of {group}"))
    for recipe in RECIPES:
        low, high = RECIPE_BITS[recipe]
        bpw = 0.75 * _mlx_bpw(low, group_size) + 0.25 * _mlx_bpw(high, group_size)
        rows.append(sized(recipe, bpw, bits=low, recipe=recipe,
                          note=f"{low} bits, sensitive layers {high}"))
    for bits in (3, 4):
        bpw = _mlx_bpw(bits, group_size) + 0.5
        rows.append(sized(f"learned {bits}-{bits + 2} bit", bpw, bits=bits, learned=True,
                          note="layers chosen on the calibration text (slower)"))
    return rows


def quant_choices(meta: ModelMetadata, engine: EngineName, n_ctx: int = 4096,
                  group_size: int = 64, total_ram: int | None = None,
                  available_ram: int | None = None) -> list[QuantChoice]:
    """Every choice for `meta` on `engine`, common ones first, each with its fit."""
    n_params = meta.n_params
    if engine == "llama.cpp":
        ordered = sorted(LLAMA_TYPES, key=lambda t: (t.name not in COMMON_LLAMA,
                                                     -t.bits_per_weight))
        rows = [_llama(kind, n_params) for kind in ordered]
    else:
        rows = _mlx(n_params, group_size, float_bits(meta))
    shape = shape_of(meta)
    fitted = []
    for row in rows:
        fit = estimate(replace(shape, size_bytes=row.expected_bytes), n_ctx, engine,
                       total_ram, available_ram)
        fitted.append(replace(row, fit=fit.verdict))
    return fitted


def mlx_plan_options(choice: QuantChoice, group_size: int) -> dict[str, Any]:
    """The keyword arguments `plan_mlx_quantize` takes for `choice`."""
    if choice.mode in MODE_LAYOUT:
        bits, group = MODE_LAYOUT[choice.mode]
        return {"bits": bits, "group_size": group, "mode": choice.mode}
    options: dict[str, Any] = {"bits": choice.bits, "group_size": group_size}
    if choice.recipe:
        options["recipe"] = choice.recipe
    if choice.learned:
        options["dynamic_bpw"] = choice.bits_per_weight
    return options


def default_dest(source: Path, choice: QuantChoice, folder: Path) -> Path:
    """`folder`/<source name>-<choice>.gguf, or a folder for MLX."""
    stem = source.stem if source.suffix.lower() == ".gguf" else source.name
    for suffix in ("-F16", "-F32", "-BF16", ".F16", ".F32", ".BF16", "-f16", "-bf16"):
        stem = stem.removesuffix(suffix)
    label = choice.name.replace(" ", "-")
    if choice.engine == "llama.cpp":
        return folder / f"{stem}-{label}.gguf"
    return folder / f"{stem}-mlx-{label}"


@dataclass(frozen=True, slots=True)
class Advice:
    text: str
    recommended: str | None  # a measured variant's path, or a type name


def ram_guide(meta: ModelMetadata, measured: list[dict[str, Any]], total_ram: int,
              sizes: dict[str, int], max_kld: float = 0.1) -> Advice:
    """The seed's table (RAM and model size to a type), then the measured variants: the
    smallest one within `max_kld` of the source that leaves a quarter of RAM free."""
    n_b = meta.n_params / 1e9
    seed = recommend_quant(total_ram, meta.n_params)
    table = (f"With {human_size(total_ram)} of memory, the guide for a "
             f"{n_b:.3g}B-parameter model is {SEED_ADVICE.get(seed, seed)}"
             if seed else f"With {human_size(total_ram)} of memory, a {n_b:.3g}B-parameter "
                          "model is not recommended at any type")
    budget = total_ram * 0.75
    good = [row for row in measured if row.get("kld_mean") is not None
            and row["kld_mean"] <= max_kld and sizes.get(row["model"], 0) <= budget]
    if not good:
        tail = (" Measure the variants you make to see what each one loses." if not measured
                else f" No measured variant is within KLD {max_kld:g} of the source and fits.")
        return Advice(table + "." + tail, SEED_ADVICE.get(seed or ""))
    best = min(good, key=lambda row: sizes[row["model"]])
    name = Path(best["model"]).name
    return Advice(
        f"{table}. Measured here: {name} ({human_size(sizes[best['model']])}) is the smallest "
        f"variant within KLD {max_kld:g} of the source (KLD {best['kld_mean']:.4f}, "
        f"ΔPPL {best['delta_ppl']:+.3f}); it is the one to use on this machine.",
        best["model"])


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """What the Quantize pane shows for a source: its metadata, the choices on each
    engine, the measured variants with their sizes, and the guide."""

    meta: ModelMetadata
    choices: dict[str, list[QuantChoice]]
    measured: list[dict[str, Any]]
    sizes: dict[str, int]
    advice: Advice


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def summarize_source(source: str, n_ctx: int = 4096, group_size: int = 64) -> SourceSummary:
    """Everything above for `source` (reads headers and quality.json; no model load)."""
    from macllm_app.core.formats.inspect import inspect_model
    from macllm_app.core.platform.memory import total_ram_bytes
    from macllm_app.core.quantize.results import results_for

    meta = inspect_model(Path(source))
    choices = {engine: quant_choices(meta, engine, n_ctx, group_size)
               for engine in ("llama.cpp", "mlx")}
    measured = results_for(source)
    sizes = {row["model"]: _size(Path(row["model"])) for row in measured}
    return SourceSummary(meta, dict(choices), measured, sizes,
                         ram_guide(meta, measured, total_ram_bytes(), sizes))
