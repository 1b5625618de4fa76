"""Quality of quantized models, measured as llama-perplexity measures it: perplexity over
the second half of 512-token chunks, KL divergence and same-top share against the base,
on llama.cpp (the default model's F16 copy and its quantizations) and on MLX (tiny
random-weight models)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from macllm_app.core.errors import UserError
from macllm_app.core.jobs import Job
from macllm_app.core.quantize.imatrix_compute import IMATRIX_TARGET
from macllm_app.core.quantize.llamacpp import QUANTIZE_TARGET, QuantizeOptions, plan_quantize
from macllm_app.core.quantize.quality import N_CTX, chunks_of, evaluate
from macllm_app.core.quantize.results import load_results, record, results_for
from macllm_app.core.resources import CALIBRATION_TEXT, EVALUATION_TEXT, read_text
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def imatrix(f16_default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("imatrix") / "smollm2.imatrix.gguf"
    Job(IMATRIX_TARGET, (str(f16_default_model), read_text(CALIBRATION_TEXT), str(dest),
                         None, 2)).run()
    return dest


@pytest.fixture(scope="module")
def variants(f16_default_model: Path, imatrix: Path,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("variants")
    made = {}
    for name, kind, matrix in (("Q8_0", "Q8_0", None), ("Q4_K_M", "Q4_K_M", None),
                               ("Q2_K", "Q2_K", None), ("Q2_K+imatrix", "Q2_K", imatrix)):
        plan = plan_quantize(f16_default_model, folder / f"{name}.gguf", kind,
                             QuantizeOptions(threads=2, imatrix=str(matrix) if matrix else None))
        made[name] = Path(Job(QUANTIZE_TARGET, (plan,)).run()["path"])
    return made


@pytest.mark.llamacpp
def test_quality_falls_as_bits_fall(variants: dict[str, Path], f16_default_model: Path) -> None:
    rows = {kind: evaluate(str(path), str(f16_default_model), quick=True, threads=2)
            for kind, path in variants.items()}
    base_ppls = {round(row["base_ppl"], 6) for row in rows.values()}
    assert len(base_ppls) == 1, "every variant is scored on the same tokens"
    assert all(row["chunks"] == 2 and row["tokens_scored"] == 2 * (N_CTX // 2 - 1)
               for row in rows.values())
    order = ("Q8_0", "Q4_K_M", "Q2_K+imatrix")
    delta = [rows[kind]["delta_ppl"] for kind in order]
    kld = [rows[kind]["kld_mean"] for kind in order]
    same = [rows[kind]["same_top"] for kind in order]
    assert 0 <= delta[0] < delta[1] < delta[2], delta
    assert 0 < kld[0] < kld[1] < kld[2], kld
    assert 1 >= same[0] > same[1] > same[2], same
    assert all(row["kld_p99"] >= row["kld_mean"] for row in rows.values())
    for kind, row in rows.items():  # the table's speed and memory columns
        assert row["decode_tps"] > 0 and row["prefill_tps"] > 0
        assert row["memory_bytes"] > 0.8 * variants[kind].stat().st_size
    # The importance matrix computed here makes the 2-bit model measurably closer.
    assert rows["Q2_K+imatrix"]["kld_mean"] < 0.8 * rows["Q2_K"]["kld_mean"]
    assert rows["Q2_K+imatrix"]["delta_ppl"] < rows["Q2_K"]["delta_ppl"]


@pytest.mark.llamacpp
def test_perplexity_is_llama_perplexitys_formula(f16_default_model: Path) -> None:
    """The same number, computed here independently from llama.cpp's logits."""
    import llama_cpp

    llm = llama_cpp.Llama(str(f16_default_model), n_ctx=N_CTX, n_batch=N_CTX,
                          n_ubatch=N_CTX, logits_all=True, n_threads=2, verbose=False)
    tokens = llm.tokenize(read_text(EVALUATION_TEXT).encode(), add_bos=False, special=False)
    nll = []
    for chunk in list(chunks_of(list(tokens), N_CTX, None))[:2]:
        llm.reset()
        llm.eval(chunk)
        for i in range(N_CTX // 2, N_CTX - 1):
            row = np.array(llm.scores[i], dtype=np.float64)
            log_z = row.max() + math.log(np.exp(row - row.max()).sum())
            nll.append(log_z - row[chunk[i + 1]])
    ours = evaluate(str(f16_default_model), quick=True, threads=2)
    # Ours decodes the chunks together as llama-perplexity does (one batch, a sequence
    # each), which sums in another order than one chunk at a time: the last digits move.
    assert ours["ppl"] == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-4)
    assert ours["base"] is None and ours["kld_mean"] is None


@pytest.mark.mlx
def test_mlx_variants_are_measured_through_mlx(tmp_path: Path) -> None:
    base = make_tiny_mlx_model(tmp_path / "base", seed=3)
    four_bit = make_tiny_mlx_model(tmp_path / "q4", seed=3, quantize=True)
    text = "the quick brown fox jumps over the lazy dog " * 60  # bytes: ~2,600 tokens
    alone = evaluate(str(base), text=text, quick=True)
    itself = evaluate(str(base), str(base), text=text, quick=True)
    quantized = evaluate(str(four_bit), str(base), text=text, quick=True)
    assert alone["engine"] == itself["engine"] == quantized["engine"] == "mlx"
    assert itself["kld_mean"] == pytest.approx(0.0, abs=1e-9) and itself["same_top"] == 1.0
    assert itself["ppl"] == pytest.approx(alone["ppl"]) == pytest.approx(quantized["base_ppl"])
    assert quantized["kld_mean"] > 1e-6 and quantized["delta_ppl"] != 0.0


@pytest.mark.mlx
def test_a_text_shorter_than_one_chunk_is_one_line(tmp_path: Path) -> None:
    model = make_tiny_mlx_model(tmp_path / "m")
    with pytest.raises(UserError, match=r"^The evaluation text is too short for one chunk "
                                        r"of 512 tokens \(11 tokens\)\.$"):
        evaluate(str(model), text="hello world")


def test_results_keep_the_latest_measurement_with_its_provenance() -> None:
    report: dict[str, Any] = {"model": "/m/q4.gguf", "base": "/m/f16.gguf", "chunks": 2,
                              "kld_mean": 0.05, "ppl": 10.0}
    record(report, {"text": "evaluation.txt"})
    record({**report, "kld_mean": 0.04}, {"text": "evaluation.txt"})
    record({**report, "model": "/m/q8.gguf", "kld_mean": 0.001}, {"text": "evaluation.txt"})
    assert len(load_results()) == 2
    ranked = results_for("/m/f16.gguf")
    assert [r["model"] for r in ranked] == ["/m/q8.gguf", "/m/q4.gguf"]
    assert ranked[1]["kld_mean"] == 0.04 and ranked[1]["provenance"]["text"] == "evaluation.txt"


@pytest.mark.llamacpp
def test_the_importance_matrix_covers_every_weight_as_llama_imatrix_does(
        imatrix: Path, f16_default_model: Path) -> None:
    from macllm_app.core.formats.gguf_reader import read_gguf_header
    from macllm_app.core.quantize.imatrix import read_imatrix

    values = read_imatrix(imatrix)
    weights = {t.name: t.dims for t in read_gguf_header(f16_default_model).tensors
               if t.name.startswith("blk.") and len(t.dims) == 2}
    assert set(values) == set(weights)  # every layer's products, the last one's too
    for name, dims in weights.items():
        assert values[name].shape == (dims[0],)  # one value per input column
        assert np.isfinite(values[name]).all() and (values[name] >= 0).all()
    # q, k and v read the same normalized input: the same importance
    assert np.allclose(values["blk.3.attn_q.weight"], values["blk.3.attn_k.weight"])
    assert not np.allclose(values["blk.3.attn_q.weight"], values["blk.3.attn_output.weight"])


@pytest.mark.llamacpp
def test_a_calibration_text_shorter_than_a_chunk_is_one_line(f16_default_model: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match=r"^The calibration text is too short for one chunk"):
        Job(IMATRIX_TARGET, (str(f16_default_model), "Too short.", str(out / "m.gguf"))).run()
    assert not list(out.iterdir())
