"""The Quantize pane's lists: every type on each engine with its size and fit, the MLX
plan each row makes, the default destination, and the RAM-to-type guide."""

from __future__ import annotations

from pathlib import Path

import pytest

from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.quantize.choices import (
    COMMON_LLAMA,
    default_dest,
    mlx_plan_options,
    quant_choices,
    ram_guide,
)
from macllm_app.core.quantize.llama_types import LLAMA_TYPES
from macllm_app.core.quantize.mlx import plan_mlx_quantize
from tests.support.mlx_tiny import make_tiny_mlx_model

GIB = 2**30


def test_llama_choices_list_every_type_common_first_with_size_and_fit(
        default_model: Path) -> None:
    meta = inspect_model(default_model)
    rows = quant_choices(meta, "llama.cpp", total_ram=16 * GIB, available_ram=8 * GIB)
    assert sorted(r.name for r in rows) == sorted(t.name for t in LLAMA_TYPES)
    assert tuple(r.name for r in rows[:len(COMMON_LLAMA)]) == COMMON_LLAMA
    q8, q2 = (next(r for r in rows if r.name == n) for n in ("Q8_0", "Q2_K"))
    assert q8.expected_bytes == pytest.approx(meta.n_params * 8.5 / 8, rel=0.01)
    assert q2.expected_bytes < q8.expected_bytes
    assert {r.fit for r in rows} == {"fits"}
    assert next(r for r in rows if r.name == "IQ2_XS").note == "needs an importance matrix"
    tiny_ram = quant_choices(meta, "llama.cpp", total_ram=400_000_000,
                             available_ram=300_000_000)
    fits = {r.name: r.fit for r in tiny_ram}
    assert fits["F32"] == "wont_fit" and fits["IQ1_S"] != "wont_fit"


def test_each_mlx_row_makes_a_plan_the_quantizer_accepts(tmp_path: Path) -> None:
    model = make_tiny_mlx_model(tmp_path / "tiny")
    meta = inspect_model(model)
    rows = quant_choices(meta, "mlx", group_size=32, total_ram=16 * GIB,
                         available_ram=8 * GIB)
    names = [r.name for r in rows]
    assert names[:6] == ["8-bit", "6-bit", "5-bit", "4-bit", "3-bit", "2-bit"]
    assert {"mxfp4", "nvfp4", "mxfp8", "mixed_3_6", "learned 4-6 bit"} <= set(names)
    four = rows[names.index("4-bit")]
    assert four.bits_per_weight == 6.0  # F32 scale and bias per group of 32
    for row in rows:
        plan = plan_mlx_quantize(model, tmp_path / "out", **mlx_plan_options(row, 32))
        assert plan.label()
    learned = rows[names.index("learned 4-6 bit")]
    assert mlx_plan_options(learned, 32)["dynamic_bpw"] == learned.bits_per_weight


def test_default_destinations_name_the_source_and_type(tmp_path: Path,
                                                       default_model: Path) -> None:
    rows = quant_choices(inspect_model(default_model), "llama.cpp")
    q4 = next(r for r in rows if r.name == "Q4_K_M")
    assert default_dest(tmp_path / "smollm2-F16.gguf", q4, tmp_path) == \
        tmp_path / "smollm2-Q4_K_M.gguf"
    folder = tmp_path / "tiny"
    folder.mkdir()
    mlx_row = quant_choices(inspect_model(make_tiny_mlx_model(folder)), "mlx")[3]
    assert default_dest(folder, mlx_row, tmp_path) == tmp_path / "tiny-mlx-4-bit"


def test_the_guide_uses_measurements_when_there_are_some(default_model: Path) -> None:
    meta = inspect_model(default_model)
    plain = ram_guide(meta, [], 16 * GIB, {})
    assert plain.recommended == "Q8_0"
    assert plain.text.startswith("With 16.0 GB of memory, the guide for a 0.135B-parameter "
                                 "model is Q8_0.")
    measured = [
        {"model": "/m/q8.gguf", "kld_mean": 0.004, "delta_ppl": 0.1},
        {"model": "/m/q4.gguf", "kld_mean": 0.058, "delta_ppl": 1.5},
        {"model": "/m/q2.gguf", "kld_mean": 0.41, "delta_ppl": 14.8},
    ]
    sizes = {"/m/q8.gguf": 145_000_000, "/m/q4.gguf": 105_000_000, "/m/q2.gguf": 88_000_000}
    advice = ram_guide(meta, measured, 16 * GIB, sizes)
    assert advice.recommended == "/m/q4.gguf" and "q4.gguf (100.1 MB)" in advice.text
    strict = ram_guide(meta, measured, 16 * GIB, sizes, max_kld=0.01)
    assert strict.recommended == "/m/q8.gguf"
    small = ram_guide(meta, measured, 100_000_000, sizes)
    assert small.recommended is None and "not recommended" in small.text
