"""llama.cpp quantization of the default model's F16 copy, through the job the app and
the CLI run: the files load and answer, bad input is one line before any work, and a
cancelled or killed job leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import struct
from pathlib import Path

import numpy as np
import pytest

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.errors import Cancelled, UserError
from macllm_app.core.formats.gguf_reader import read_gguf_header
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.jobs import Job, JobFailed
from macllm_app.core.library.catalogue import Catalogue
from macllm_app.core.library.conversions import check_space, partial_cleanup
from macllm_app.core.quantize.imatrix import read_imatrix, write_imatrix
from macllm_app.core.quantize.llama_types import BY_FTYPE, LLAMA_TYPES, NOT_QUANTIZABLE
from macllm_app.core.quantize.llamacpp import (
    CANCEL_GRACE_S,
    QUANTIZE_TARGET,
    QuantizeOptions,
    plan_quantize,
)
from macllm_app.core.types import LoadConfig, Message
from tests.support.engine_events import collect_events, greedy_request

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]


def _quantize(plan: object, progress: list[tuple[float, str]] | None = None) -> dict[str, str]:
    seen = progress if progress is not None else []
    job = Job(QUANTIZE_TARGET, (plan,), title="Quantizing", cancel_grace_s=CANCEL_GRACE_S)
    entry: dict[str, str] = job.run(lambda f, m: seen.append((f, m)))
    return entry


def _answers(path: Path) -> str:
    with EngineHost() as host:
        host.load(LoadConfig(model_path=str(path), n_ctx=512, n_threads=2))
        text, ids, _ = collect_events(host.stream(greedy_request(
            (Message("user", "What is the capital of France?"),), 8)))
    assert ids
    return text


def test_every_type_llama_cpp_python_exposes_is_offered() -> None:
    import llama_cpp

    exposed = {name.removeprefix("LLAMA_FTYPE_MOSTLY_").removeprefix("LLAMA_FTYPE_ALL_"):
               getattr(llama_cpp, name) for name in dir(llama_cpp)
               if name.startswith(("LLAMA_FTYPE_MOSTLY_", "LLAMA_FTYPE_ALL_"))}
    offered = {t.name: t.ftype for t in LLAMA_TYPES}
    assert {**offered, **NOT_QUANTIZABLE} == exposed
    assert len(BY_FTYPE) == len(LLAMA_TYPES)


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_K_M"])
def test_the_f16_copy_quantizes_loads_and_answers(f16_default_model: Path, tmp_path: Path,
                                                  kind: str) -> None:
    dest = tmp_path / f"smollm2-{kind}.gguf"
    plan = plan_quantize(f16_default_model, dest, kind, QuantizeOptions(threads=2))
    assert plan.warning == "" and plan.source_type == "F16"
    progress: list[tuple[float, str]] = []
    entry = _quantize(plan, progress)
    assert entry["path"] == str(dest) and entry["quantization"] == kind
    assert any(message.startswith("tensor ") and " of 272 " in message
               for _f, message in progress), progress[:5]
    assert progress[-1][0] == 1.0
    assert [f for f, _m in progress] == sorted(f for f, _m in progress)
    stored = Catalogue().find_path(dest)
    assert stored is not None
    assert stored.extra["quantized_from"] == str(f16_default_model)
    assert stored.extra["tool"].startswith("llama.cpp (llama-cpp-python ")
    assert not list(tmp_path.glob(".*partial"))
    size = dest.stat().st_size
    assert 0.6 * plan.expected_bytes < size < 1.6 * plan.expected_bytes
    assert _answers(dest).strip()


def test_output_and_per_tensor_types_are_honoured(f16_default_model: Path,
                                                  tmp_path: Path) -> None:
    dest = tmp_path / "mixed.gguf"
    options = QuantizeOptions(threads=2, token_embedding_type="Q8_0",
                              tensor_types=((r"attn_v\.weight", "Q8_0"),), pure=True)
    _quantize(plan_quantize(f16_default_model, dest, "Q4_0", options))
    types = {t.name: t.type_name for t in read_gguf_header(dest).tensors}
    assert types["token_embd.weight"] == "Q8_0"
    assert types["blk.0.attn_v.weight"] == "Q8_0"
    assert types["blk.0.attn_q.weight"] == "Q4_0"  # pure: no K-quant mix elsewhere


def _ones_imatrix(model: Path, dest: Path) -> Path:
    """An importance matrix of ones for every weight matrix (as if every input column
    mattered the same), in llama-imatrix's GGUF format."""
    header = read_gguf_header(model)
    sums = {t.name: np.full(t.dims[0], 7.0, np.float32) for t in header.tensors
            if len(t.dims) == 2 and t.name.endswith(".weight")}
    counts = {name: np.array([7.0], np.float32) for name in sums}
    write_imatrix(dest, sums, counts, datasets=["ones"], chunk_count=1, chunk_size=512)
    return dest


def test_an_importance_matrix_is_read_and_enables_the_iq_types(f16_default_model: Path,
                                                               tmp_path: Path) -> None:
    imatrix = _ones_imatrix(f16_default_model, tmp_path / "imatrix.gguf")
    values = read_imatrix(imatrix)
    assert np.allclose(values["blk.0.attn_q.weight"], 1.0)  # sums / counts
    with pytest.raises(UserError, match=r"^IQ2_XXS needs an importance matrix"):
        plan_quantize(f16_default_model, tmp_path / "iq.gguf", "IQ2_XXS")
    dest = tmp_path / "iq2.gguf"
    plan = plan_quantize(f16_default_model, dest, "IQ2_XXS",
                         QuantizeOptions(threads=2, imatrix=str(imatrix)))
    entry = _quantize(plan)
    assert entry["quantization"] == "IQ2_XXS"
    assert Catalogue().find_path(dest).extra["imatrix"] == str(imatrix)  # type: ignore[union-attr]
    assert "IQ2_XXS" in {t.type_name for t in read_gguf_header(dest).tensors}
    with EngineHost() as host:  # it loads; a 135M model at 2 bits says little of use
        info = host.load(LoadConfig(model_path=str(dest), n_ctx=256, n_threads=2))
        assert info.n_params > 0


def test_the_legacy_imatrix_format_is_read(tmp_path: Path) -> None:
    legacy = tmp_path / "imatrix.dat"
    name = b"blk.0.attn_q.weight"
    legacy.write_bytes(struct.pack("<i", 1) + struct.pack("<i", len(name)) + name
                       + struct.pack("<ii", 4, 3) + struct.pack("<3f", 8.0, 4.0, 2.0))
    assert read_imatrix(legacy)["blk.0.attn_q.weight"].tolist() == [2.0, 1.0, 0.5]
    broken = tmp_path / "broken.dat"
    broken.write_bytes(b"\x05\x00\x00\x00garbage")
    with pytest.raises(UserError, match=r"^broken\.dat: not an importance matrix"):
        read_imatrix(broken)


def test_bad_input_is_one_line_before_any_work(f16_default_model: Path, default_model: Path,
                                               tmp_path: Path) -> None:
    def refused(src: Path, dest: Path, kind: str, pattern: str,
                options: QuantizeOptions | None = None) -> None:
        with pytest.raises(UserError, match=pattern) as info:
            plan_quantize(src, dest, kind, options)
        assert "\n" not in str(info.value)

    out = tmp_path / "out.gguf"
    refused(tmp_path / "nope.gguf", out, "Q4_0", r"nope\.gguf: no such file")
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\xff" * 64)
    refused(corrupt, out, "Q4_0", r"^corrupt\.gguf: ")
    refused(f16_default_model, out, "Q4_K_XL", r"^Unknown quantization type 'Q4_K_XL'")
    refused(default_model, out, "Q4_K_M", r"is already quantized \(Q4_1\).*Allow requantizing")
    refused(default_model, out, "Q5_K_M", r"already Q4_1 \(5 bits per weight\), at or below")
    refused(f16_default_model, f16_default_model, "Q4_0", r"cannot replace its source")
    taken = tmp_path / "taken.gguf"
    taken.write_bytes(b"mine")
    refused(f16_default_model, taken, "Q4_0", r"taken\.gguf already exists")
    assert taken.read_bytes() == b"mine"
    refused(f16_default_model, out, "Q4_0", r"^Unknown tensor type 'Q9'",
            QuantizeOptions(output_tensor_type="Q9"))
    refused(f16_default_model, out, "Q4_0", r"^Q6_K stores rows in blocks of 256 values; this "
            r"model's token embedding rows have 576", QuantizeOptions(token_embedding_type="Q6_K"))
    refused(f16_default_model, out, "Q4_0", r"is not a regular expression",
            QuantizeOptions(tensor_types=(("attn[", "Q8_0"),)))
    refused(f16_default_model, out, "IQ1_S", r"no such importance matrix file",
            QuantizeOptions(imatrix=str(tmp_path / "missing.imatrix")))
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(UserError, match=r"^Not enough disk space in .*: needs about"):
        check_space(tmp_path, free)  # the real free space of this disk, all of it
    assert not out.exists()


def test_requantizing_when_allowed_warns_and_works(default_model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "from-q4_1.gguf"
    plan = plan_quantize(default_model, dest, "Q4_0",
                         QuantizeOptions(threads=2, allow_requantize=True))
    assert plan.warning.startswith("Requantizing from Q4_1 rounds the weights twice")
    _quantize(plan)
    assert inspect_model(dest).quantization == "Q4_0"


def test_a_cancelled_or_killed_job_leaves_nothing(f16_default_model: Path,
                                                  tmp_path: Path) -> None:
    dest = tmp_path / "cancelled.gguf"
    plan = plan_quantize(f16_default_model, dest, "Q6_K", QuantizeOptions(threads=1))
    job = Job(QUANTIZE_TARGET, (plan,), title="Quantizing", cancel_grace_s=CANCEL_GRACE_S,
              after_crash=partial_cleanup(dest))
    with pytest.raises(Cancelled):
        job.run(lambda _f, message: job.cancel() if message.startswith("tensor") else None)
    assert not dest.exists() and not list(tmp_path.glob(".cancelled*"))

    killed = Job(QUANTIZE_TARGET, (plan,), title="Quantizing", after_crash=partial_cleanup(dest))

    def kill(_fraction: float, message: str) -> None:
        if message.startswith("tensor") and killed.pid is not None:
            os.kill(killed.pid, signal.SIGKILL)

    with pytest.raises(JobFailed, match=r"stopped unexpectedly \(killed by SIGKILL"):
        killed.run(kill)
    assert not dest.exists() and not list(tmp_path.glob(".cancelled*"))
