"""The memory-fit estimator: formula pieces, verdicts, the recommendation table."""

from __future__ import annotations

from pathlib import Path

import pytest

from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.hardware.fit import (
    ModelShape,
    estimate,
    kv_cache_bytes,
    recommend_quant,
    shape_of,
)
from macllm_app.core.library import commands

GiB = 2**30


def test_kv_cache_formula(default_model: Path) -> None:
    shape = shape_of(inspect_model(default_model))
    # 2 (K,V) * 30 layers * n_ctx * 3 kv heads * 64 head dim * 2 bytes
    assert kv_cache_bytes(shape, 2048) == 2 * 30 * 2048 * 3 * 64 * 2
    assert kv_cache_bytes(shape, 8192) == 4 * kv_cache_bytes(shape, 2048)


@pytest.mark.parametrize(("ram_gb", "params_b", "quant"), [
    (8, 7, "Q4"), (8, 13, None), (16, 7, "Q8"), (16, 13, "Q4"), (16, 33, None),
    (32, 7, "F16-Q8"), (32, 13, "Q8"), (32, 33, "Q4"), (32, 70, None),
    (64, 7, "F16"), (64, 13, "F16"), (64, 33, "Q8"), (64, 70, "Q4"),
    (128, 70, "F16 or Q8"), (128, 7, "F16 or Q8"), (4, 7, None),
])
def test_recommendation_table(ram_gb: int, params_b: int, quant: str | None) -> None:
    assert recommend_quant(int(ram_gb * GiB * 0.97), int(params_b * 1e9)) == quant


def test_verdicts() -> None:
    shape = ModelShape(size_bytes=4 * GiB, n_layers=32, n_kv_heads=8, head_dim=128,
                       n_heads=32, embedding_length=4096, vocab_size=32000, n_params=7 * 10**9)
    assert estimate(shape, 4096, total_ram=64 * GiB, available_ram=40 * GiB).verdict == "fits"
    assert estimate(shape, 4096, total_ram=8 * GiB, available_ram=5 * GiB).verdict == "tight"
    assert estimate(shape, 4096, total_ram=4 * GiB, available_ram=3 * GiB).verdict == "wont_fit"
    big_ctx = estimate(shape, 131072, total_ram=16 * GiB, available_ram=12 * GiB)
    assert big_ctx.kv_cache_bytes == 16 * GiB and big_ctx.verdict == "wont_fit"
    est = estimate(shape, 4096, total_ram=16 * GiB, available_ram=12 * GiB)
    assert est.recommended_quant == "Q8"
    assert est.expected_bytes == (est.overhead_bytes + est.weights_bytes + est.kv_cache_bytes
                                  + est.compute_bytes)
    assert est.worst_case_bytes > est.expected_bytes


def test_fit_command(default_model: Path) -> None:
    result = commands.fit(str(default_model), 2048)
    assert result["weights_bytes"] == default_model.stat().st_size
    assert result["verdict"] in ("fits", "tight", "wont_fit")
