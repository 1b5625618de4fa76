"""`macllm models ...` run as a subprocess, against real files and a local fake Hub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_hub import FakeHub, FakeRepo
from tests.support.gguf_writer import TinyGGUF
from tests.support.slow_hub import slow_cdn

MACLLM = [sys.executable, "-m", "macllm_app.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env.update(PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
               HF_HUB_DISABLE_TELEMETRY="1", **extra)
    env.pop("HF_HUB_OFFLINE", None)
    return env


def _macllm(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MACLLM, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=env or _env())


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return TinyGGUF.llama(quant="Q8_0").write(tmp_path / "tiny-Q8_0.gguf")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    src = tmp_path / "hubsrc"
    src.mkdir()
    big = TinyGGUF.llama(emb=2048, quant="Q8_0").write(src / "big.gguf").read_bytes()
    small = TinyGGUF.llama(quant="Q4_0").write(src / "small.gguf").read_bytes()
    server = FakeHub()
    server.add(FakeRepo("acme/Tiny-GGUF", {"tiny-Q4_0.gguf": small, "tiny-Q8_0.gguf": big},
                        downloads=50, tags=["gguf"], library="gguf"))
    server.add(FakeRepo("acme/Other-GGUF", {"o-Q4_0.gguf": small}, downloads=900,
                        tags=["gguf"], library="gguf"))
    server.add(FakeRepo("mlx-community/Tiny-4bit", {"config.json": b"{}"}, downloads=70,
                        tags=["mlx"], library="mlx"))
    with server:
        yield server


def test_inspect_and_import_link(tiny: Path) -> None:
    result = _macllm("models", "inspect", str(tiny), "--json")
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout)
    assert (meta["format"], meta["architecture"], meta["quantization"]) == ("gguf", "llama", "Q8_0")
    text = _macllm("models", "inspect", str(tiny)).stdout
    assert "quantization       Q8_0" in text

    imported = _macllm("models", "import", str(tiny))
    assert imported.returncode == 0, imported.stderr
    listed = json.loads(_macllm("models", "list", "--json").stdout)
    by_path = {r["path"]: r for r in listed}
    assert by_path[str(tiny)]["source"] == "link"
    assert any(r["source"] == "bundled" for r in listed)
    assert all(r["fit"] in {"fits", "tight", "wont_fit"} for r in listed)


def test_import_copy_and_a_corrupt_file(tiny: Path, tmp_path: Path,
                                        macllm_home: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 40)
    result = _macllm("models", "import", "--copy", str(tiny), str(bad))
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and "broken.gguf" in errors[0] and "Traceback" not in result.stderr
    listed = json.loads(_macllm("models", "list", "--json").stdout)
    copies = [r for r in listed if r["source"] == "copy"]
    assert len(copies) == 1 and Path(copies[0]["path"]).is_relative_to(macllm_home)
    assert Path(copies[0]["path"]).read_bytes() == tiny.read_bytes()


def test_user_errors_are_one_line() -> None:
    for args in (("models", "inspect", "/no/such/model.gguf"), ("models", "fit", "nope")):
        result = _macllm(*args)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_fit_of_the_default_model() -> None:
    result = _macllm("models", "fit", "--ctx", "2048", "--json")
    assert result.returncode == 0, result.stderr
    est = json.loads(result.stdout)
    assert est["n_ctx"] == 2048 and est["verdict"] in {"fits", "tight", "wont_fit"}
    assert "at 2048 tokens" in _macllm("models", "fit", "default", "--ctx", "2048").stdout


def test_search_filters_and_sorts(hub: FakeHub) -> None:
    env = _env(HF_ENDPOINT=hub.endpoint)
    result = _macllm("models", "search", "tiny", "--gguf", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert [m["id"] for m in json.loads(result.stdout)] == ["acme/Tiny-GGUF"]
    mlx = _macllm("models", "search", "", "--mlx", env=env).stdout
    assert "mlx-community/Tiny-4bit" in mlx and "acme" not in mlx
    every = json.loads(_macllm("models", "search", "", "--json", env=env).stdout)
    assert every[0]["id"] == "acme/Other-GGUF"


def test_pull_pauses_on_ctrl_c_and_resumes(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    slow_cdn(monkeypatch)
    env = _env(HF_ENDPOINT=hub.endpoint)
    args = [*MACLLM, "models", "pull", "acme/Tiny-GGUF", "--file", "tiny-Q8_0.gguf"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    seen = b""
    while b"%" not in seen:  # the first progress line: bytes are arriving
        piece = proc.stderr.read1(4096)  # type: ignore[attr-defined]
        assert piece, "pull ended before reporting progress"
        seen += piece
    proc.send_signal(signal.SIGINT)
    _out, rest = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert b"paused" in rest and b"Traceback" not in seen + rest

    result = _macllm("models", "pull", "acme/Tiny-GGUF", "--file", "tiny-Q8_0.gguf",
                     "--json", env=env)
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)
    data = hub.repos["acme/Tiny-GGUF"].files["tiny-Q8_0.gguf"]
    assert Path(entry["path"]).read_bytes() == data
    ranges = [h.get("range") for m, p, h in hub.requests if m == "GET" and p.startswith("/cdn/")]
    assert ranges[0] is None and ranges[-1] and ranges[-1].startswith("bytes=")
    assert "100.0%" in result.stderr


def test_pull_of_an_unknown_file_is_a_user_error(hub: FakeHub) -> None:
    result = _macllm("models", "pull", "acme/Tiny-GGUF", "--file", "nope.gguf",
                     env=_env(HF_ENDPOINT=hub.endpoint))
    assert result.returncode == 1 and "no file 'nope.gguf'" in result.stderr
