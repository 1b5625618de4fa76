"""The memory estimate against real llama.cpp loads of the default model (peak RSS)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from macllm_app.core.hardware.fit import ENGINE_OVERHEAD
from macllm_app.core.library.catalogue import Catalogue
from macllm_app.core.library.memory_records import estimate_for, record_measured_peak

ROOT = Path(__file__).resolve().parents[2]


def _measure(*args: str) -> int:
    # Linux carries the parent's peak RSS into ru_maxrss across fork+exec, so the
    # measured process is started by a small shell in the background, not by pytest.
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "tests.support.measure_llama",
                                            *args])
    proc = subprocess.run(["/bin/sh", "-c", f"{cmd} & wait $!"], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"])


@pytest.mark.slow
@pytest.mark.llamacpp
def test_estimate_within_25_percent_of_real_peak(default_model: Path) -> None:
    bare = _measure("bare")
    # the overhead constant is the bare interpreter + llama_cpp import, calibrated honestly
    assert abs(ENGINE_OVERHEAD["llama.cpp"] - bare) / bare < 0.2, bare
    for n_ctx in (2048, 8192):
        peak = _measure("load", str(default_model), str(n_ctx))
        est = estimate_for(str(default_model), n_ctx)
        m = record_measured_peak(str(default_model), "llama.cpp", n_ctx, peak)
        assert m.estimate_bytes == est.expected_bytes
        assert abs(m.error) < 0.25, (n_ctx, peak, est.to_dict())
    recorded = Catalogue().measurements(str(default_model))
    assert [m.n_ctx for m in recorded] == [2048, 8192]
