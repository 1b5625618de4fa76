"""`macllm finetune` run as a user runs it, on a tiny random-weight model: train with
per-step JSON, list and show the run, check a dataset, fuse and export, and every
refusal in one line with exit code 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = [pytest.mark.mlx, pytest.mark.slow]

MACLLM = [sys.executable, "-m", "macllm_app.cli"]
QUICK = ["--rank", "4", "--layers", "2", "--lr", "3e-3", "--batch-size", "2",
         "--iters", "8", "--max-seq-length", "96", "--save-every", "4",
         "--steps-per-eval", "4", "--val-batches", "1", "--mask-prompt"]


def _macllm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MACLLM, *args], capture_output=True, text=True, timeout=300,
                          check=False, env=os.environ.copy())


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mlx_model(tmp_path_factory.mktemp("tiny") / "tiny", seed=3)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Say {word}."},
                          {"role": "assistant", "content": f"{word}!"}]}
            for word in ("yes", "no", "maybe", "hello", "goodbye", "thanks", "sorry", "please",
                         "left", "right", "up", "down")]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_train_list_show_fuse_and_export(base: Path, data: Path, tmp_path: Path) -> None:
    trained = _macllm("finetune", "--model", str(base), "--data", str(data), *QUICK, "--json")
    assert trained.returncode == 0, trained.stderr
    lines = [json.loads(line) for line in trained.stdout.splitlines()]
    steps = [line for line in lines if line["kind"] == "train"]
    assert [s["step"] for s in steps] == list(range(1, 9))
    assert all(s["loss"] > 0 and s["tokens_per_s"] > 0 for s in steps)
    run = lines[-1]
    assert run["kind"] == "run" and run["state"] == "finished" and run["step"] == 8
    assert Path(run["adapter_dir"], "adapters.safetensors").is_file()

    listed = json.loads(_macllm("finetune", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [run["id"]]
    shown = _macllm("finetune", "show", run["id"][:12])
    assert shown.returncode == 0 and "finished at step 8 of 8" in shown.stdout

    fused = _macllm("finetune", "fuse", "last", "-o", str(tmp_path / "fused"), "--json")
    assert fused.returncode == 0, fused.stderr
    assert json.loads(fused.stdout)["format"] == "mlx"
    gguf = _macllm("finetune", "export", run["id"], "--gguf", "-o", str(tmp_path / "t.gguf"))
    assert gguf.returncode == 0, gguf.stderr
    assert Path(gguf.stdout.strip()).stat().st_size > 0
    adapter = _macllm("finetune", "export", run["id"], "--llama-adapter",
                      "-o", str(tmp_path / "a.gguf"))
    assert adapter.returncode == 0, adapter.stderr
    assert (tmp_path / "a.gguf").read_bytes()[:4] == b"GGUF"
    again = _macllm("finetune", "fuse", run["id"], "-o", str(tmp_path / "fused"))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_check_describes_the_dataset(base: Path, data: Path) -> None:
    checked = _macllm("finetune", "check", "--model", str(base), "--data", str(data),
                      "--batch-size", "2", "--layers", "2", "--max-seq-length", "16", "--json")
    summary = json.loads(checked.stdout)
    assert summary["samples"] + summary["valid_samples"] == 12
    assert summary["truncated_lines"]  # every record is longer than 16 tokens
    assert summary["memory"]["estimate_bytes"] > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "missing.jsonl"], "missing.jsonl"),
    (["--rank", "0"], "rank must be between 1 and 1024"),
    (["--layers", "9"], "9 layers asked for, but the model has 2"),
    (["--batch-size", "64"], "fewer than the batch size 64"),
])
def test_refusals_are_one_line(base: Path, data: Path, args: list[str], message: str) -> None:
    given = ["--model", str(base), "--data", str(data), "--layers", "2", *args]
    done = _macllm("finetune", *given)
    assert done.returncode == 1
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_bad_line_is_named(base: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": 3}\n'
                    '{not json\n', encoding="utf-8")
    done = _macllm("finetune", "--model", str(base), "--data", str(data))
    assert done.returncode == 1
    assert "line 2" in done.stderr and "line 3" in done.stderr
