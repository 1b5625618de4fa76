"""Monitor samples of real processes, the load guardrail's words, and the GPU limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from macllm_app.core.errors import Cancelled
from macllm_app.core.hardware.fit import ModelShape, estimate
from macllm_app.core.hardware.guardrail import fit_problem
from macllm_app.core.hardware.monitor import APP, JOB, Sampler, app_processes

GiB = 1024**3


def test_a_sample_reads_memory_and_each_watched_process() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        sampler = Sampler()
        watched = [*app_processes(None, [("Spinning", busy.pid)])]
        sampler.sample(watched)  # CPU % needs a first reading
        time.sleep(0.5)
        sample = sampler.sample(watched)
    finally:
        busy.kill()
        busy.wait()
    assert sample.memory.total_bytes > GiB and sample.pressure in {
        "normal", "warning", "critical", "unknown"}
    me, spinner = sample.process(APP), sample.process(JOB)
    assert me is not None and me.pid == os.getpid() and me.rss_bytes > 10_000_000
    assert spinner is not None and spinner.name == "Spinning"
    assert spinner.cpu_percent > 50, "a busy loop uses most of a core"
    data = json.loads(json.dumps(sample.to_json()))
    assert data["memory"]["available_bytes"] == sample.memory.available_bytes
    assert [p["role"] for p in data["processes"]] == [APP, JOB]


def test_a_process_that_ended_is_left_out() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    sample = Sampler().sample([(JOB, "Done", gone.pid)])
    assert sample.processes == ()


def _shape(size: int, layers: int = 30) -> ModelShape:
    return ModelShape(size_bytes=size, n_layers=layers, n_kv_heads=8, head_dim=128,
                      n_heads=32, embedding_length=4096, vocab_size=32_000,
                      n_params=7_000_000_000)


def test_a_model_that_fits_gets_no_warning() -> None:
    fits = estimate(_shape(4 * GiB), 4096, total_ram=32 * GiB, available_ram=24 * GiB)
    assert fit_problem(fits, "small.gguf") == ""


def test_a_model_bigger_than_what_is_free_is_explained_with_numbers() -> None:
    est = estimate(_shape(20 * GiB), 4096, total_ram=32 * GiB, available_ram=12 * GiB)
    why = fit_problem(est, "big.gguf")
    assert why.startswith("big.gguf needs about 2") and "at 4,096 tokens on llama.cpp" in why
    assert "12.0 GB of 32.0 GB is available" in why
    assert "Try a smaller quantization (" in why and "shorter context" in why
    assert "GPU" not in why


def test_a_long_context_names_the_kv_cache() -> None:
    est = estimate(_shape(4 * GiB), 262_144, total_ram=32 * GiB, available_ram=24 * GiB)
    assert "the KV cache alone needs 30.0 GB" in fit_problem(est, "m.gguf")


def test_the_gpu_working_set_limits_a_mac() -> None:
    est = estimate(_shape(14 * GiB), 4096, total_ram=32 * GiB, available_ram=28 * GiB)
    assert fit_problem(est, "m.gguf") == ""
    why = fit_problem(est, "m.gguf", gpu_limit_bytes=int(21.3 * GiB) // 2)
    assert "the GPU may use about 10.6 GB" in why and why.endswith("or fewer GPU layers.")


@pytest.mark.parametrize(("wired_mb", "memsize", "limit"), [
    ("0\n", "17179869184\n", int(16 * GiB * 0.67)),   # default on a 16 GB Mac
    ("0\n", "68719476736\n", int(64 * GiB * 0.75)),   # default on a 64 GB Mac
    ("57344\n", "68719476736\n", 56 * GiB),           # raised by `sysctl iogpu.wired_limit_mb`
    ("", "", None),                                   # the commands failed
])
def test_the_gpu_limit_from_recorded_sysctl_output(wired_mb: str, memsize: str,
                                                   limit: int | None) -> None:
    from macllm_app.core.platform.macos import gpu_limit_from

    assert gpu_limit_from(wired_mb, memsize) == limit


def test_running_jobs_are_listed_with_their_child_pid() -> None:
    from macllm_app.core.jobs import Job, running_jobs

    job = Job("tests.support.job_targets:until_stopped", title="Waiting")
    seen: list[list[tuple[str, int]]] = []

    def progress(_fraction: float, _message: str) -> None:
        if not seen:
            seen.append(running_jobs())
            job.cancel()

    with pytest.raises(Cancelled):
        job.run(progress)
    assert seen and seen[0] == [("Waiting", job.pid)]
    assert running_jobs() == []
