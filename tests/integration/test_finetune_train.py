"""Fine-tuning through mlx-lm's tuner in the job the app and the CLI run, on a tiny
random-weight model: the loss falls, every step and checkpoint is kept, the adapter
loads in mlx-lm as its own, stop saves the last step, a killed run resumes from its
last checkpoint, a diverging run stops with its step, and the fused model equals
base plus adapter."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from macllm_app.core.errors import UserError
from macllm_app.core.finetune.checkpoints import list_checkpoints
from macllm_app.core.finetune.config import TrainConfig
from macllm_app.core.finetune.fuse import FUSE_TARGET
from macllm_app.core.finetune.plan import plan_resume, plan_training
from macllm_app.core.finetune.runs import RunStore
from macllm_app.core.finetune.train import STOP_GRACE_S, TRAIN_TARGET, TRAIN_TITLE
from macllm_app.core.jobs import Job, JobFailed
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = [pytest.mark.mlx, pytest.mark.slow]
PLENTY = 64 * 1024**3
FACTS = [("Which colour is the sky?", "The sky is blue."),
         ("Which colour is grass?", "Grass is green."),
         ("Which colour is snow?", "Snow is white."),
         ("Which colour is coal?", "Coal is black."),
         ("Which colour is a lemon?", "A lemon is yellow."),
         ("Which colour is a tomato?", "A tomato is red."),
         ("Which colour is the sea?", "The sea is blue."),
         ("Which colour is a carrot?", "A carrot is orange.")]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mlx_model(tmp_path_factory.mktemp("tiny") / "tiny", seed=3)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    lines = [json.dumps({"prompt": p, "response": r}) for p, r in FACTS * 2]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def quick(**changes: Any) -> TrainConfig:
    values: dict[str, Any] = {"rank": 4, "num_layers": 2, "learning_rate": 3e-3,
                              "batch_size": 2, "iters": 12, "max_seq_length": 96,
                              "save_every": 4, "steps_per_eval": 6, "val_batches": 1,
                              "mask_prompt": True}
    values.update(changes)
    return TrainConfig(**values)


def run_job(plan: Any, events: list[dict[str, Any]] | None = None,
            on_event: Callable[[dict[str, Any]], None] | None = None,
            **kwargs: Any) -> dict[str, Any]:
    job = Job(TRAIN_TARGET, (plan,), title=TRAIN_TITLE, cancel_grace_s=STOP_GRACE_S)
    sink = events if events is not None else []

    def received(event: dict[str, Any]) -> None:
        sink.append(event)
        if on_event is not None:
            on_event(event)

    result: dict[str, Any] = job.run(on_event=received, **kwargs)
    return result


def logits_of(folder: Path, adapter: Path | None, text: str = "Which colour is snow?"
              ) -> np.ndarray:
    import mlx.core as mx
    from mlx_lm.utils import load

    model, tokenizer = load(str(folder), adapter_path=str(adapter) if adapter else None)[:2]
    tokens = mx.array([tokenizer.encode(text)])
    return np.array(model(tokens)[0, -1].astype(mx.float32))


def test_lora_run_trains_records_and_loads_in_mlx_lm(base: Path, data: Path) -> None:
    store = RunStore()
    plan = plan_training(base, data, None, quick(), PLENTY, store=store)
    events: list[dict[str, Any]] = []
    result = run_job(plan, events)
    assert result["state"] == "finished" and result["step"] == 12
    train = [e for e in events if e["kind"] == "train"]
    assert [e["step"] for e in train] == list(range(1, 13))
    assert sum(e["loss"] for e in train[-3:]) / 3 < sum(e["loss"] for e in train[:3]) / 3
    assert any(e["kind"] == "valid" for e in events)
    assert all(e["tokens_per_s"] > 0 and e["iters_per_s"] > 0 for e in train)
    recorded = store.steps(plan.run_id, "train")
    assert [r.loss for r in recorded] == pytest.approx([e["loss"] for e in train])
    run = store.get(plan.run_id)
    assert run.peak_memory_bytes > 0 and run.duration_s > 0
    assert [c.step for c in list_checkpoints(run.checkpoints_dir)] == [4, 8, 12]
    config = json.loads((run.adapter_dir / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == "lora" and config["num_layers"] == 2
    tuned, plain = logits_of(base, run.adapter_dir), logits_of(base, None)
    assert np.abs(tuned - plain).max() > 1e-3


def test_stop_saves_the_last_step_and_resume_goes_on(base: Path, data: Path) -> None:
    store = RunStore()
    plan = plan_training(base, data, None, quick(iters=40, save_every=5), PLENTY,
                         store=store)
    stop = threading.Event()
    events: list[dict[str, Any]] = []

    def stop_at_step_7(event: dict[str, Any]) -> None:
        if event["step"] >= 7:
            stop.set()

    result = run_job(plan, events, stop_at_step_7, should_stop=stop.is_set)
    assert result["state"] == "stopped"
    stopped_at = result["step"]
    assert 7 <= stopped_at < 40
    run = store.get(plan.run_id)
    saved = json.loads((run.adapter_dir / "adapter_config.json").read_text())
    assert saved["step"] == stopped_at
    assert list_checkpoints(run.checkpoints_dir)[-1].step == 5
    resumed = run_job(plan_resume(plan.run_id, store))
    assert resumed["state"] == "finished" and resumed["step"] == 40
    steps = [r.step for r in store.steps(plan.run_id, "train")]
    assert steps[-1] == 40 and len(set(steps)) == len(steps) == 40


def test_a_killed_run_keeps_its_checkpoints_and_resumes(base: Path, data: Path) -> None:
    store = RunStore()
    plan = plan_training(base, data, None, quick(iters=30, save_every=5), PLENTY,
                         store=store)
    job = Job(TRAIN_TARGET, (plan,), title=TRAIN_TITLE)

    def kill_at_step_11(event: dict[str, Any]) -> None:
        if event["step"] == 11 and event["kind"] == "train" and job.pid is not None:
            os.kill(job.pid, signal.SIGKILL)

    with pytest.raises(JobFailed, match="stopped unexpectedly"):
        job.run(on_event=kill_at_step_11)
    store.mark_dead_runs(alive=set())
    run = store.get(plan.run_id)
    assert run.state == "killed"
    kept = [c.step for c in list_checkpoints(run.checkpoints_dir)]
    assert kept == [5, 10]
    assert not [p for p in run.checkpoints_dir.iterdir() if p.name.startswith(".")]
    resumed = run_job(plan_resume(plan.run_id, store))
    assert resumed["state"] == "finished" and resumed["step"] == 30


def test_a_batch_with_nothing_to_learn_is_refused_before_training(base: Path,
                                                                  tmp_path: Path) -> None:
    data = tmp_path / "long-prompts.jsonl"
    records = [{"prompt": "tell me " * 40 + str(i), "response": "ok"} for i in range(8)]
    data.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    store = RunStore()
    plan = plan_training(base, data, None, quick(max_seq_length=32), PLENTY, store=store)
    with pytest.raises(JobFailed, match="teach nothing under prompt masking"):
        run_job(plan)
    run = store.get(plan.run_id)
    assert run.state == "failed" and store.steps(plan.run_id) == []


def test_resume_refuses_a_changed_dataset(base: Path, data: Path) -> None:
    store = RunStore()
    plan = plan_training(base, data, None, quick(iters=4, save_every=2), PLENTY, store=store)
    run_job(plan)
    data.write_text(data.read_text() + json.dumps({"prompt": "a", "response": "b"}) + "\n")
    with pytest.raises(UserError, match="changed since the run started"):
        plan_resume(plan.run_id, store, extra_steps=4)


def test_fused_model_equals_base_plus_adapter(base: Path, data: Path,
                                              tmp_path: Path) -> None:
    store = RunStore()
    plan = plan_training(base, data, None, quick(), PLENTY, store=store)
    run_job(plan)
    run = store.get(plan.run_id)
    entry = Job(FUSE_TARGET, (run.id, str(tmp_path / "fused"), str(store.path))).run()
    assert entry["extra"]["finetune_run"] == run.id
    fused_config = json.loads((tmp_path / "fused" / "config.json").read_text())
    assert "quantization" not in fused_config
    expected = logits_of(base, run.adapter_dir)
    got = logits_of(tmp_path / "fused", None)
    assert np.abs(got - expected).max() <= 0.02 * np.abs(expected).max() + 1e-3


@pytest.mark.parametrize("method", ["dora", "qlora", "full"])
def test_every_method_trains(base: Path, data: Path, method: str) -> None:
    store = RunStore()
    plan = plan_training(base, data, None, quick(method=method, iters=6, save_every=3,
                                                 learning_rate=1e-3),
                         PLENTY, store=store)
    events: list[dict[str, Any]] = []
    result = run_job(plan, events)
    assert result["state"] == "finished"
    losses = [e["loss"] for e in events if e["kind"] == "train"]
    assert len(losses) == 6 and all(np.isfinite(losses))
    config = json.loads((Path(result["run_dir"]) / "adapter" / "adapter_config.json")
                        .read_text())
    assert config["method"] == method
    assert config["quantized_base"] is (method == "qlora")


def test_a_run_that_will_not_fit_is_refused_unless_forced(base: Path, data: Path) -> None:
    with pytest.raises(UserError, match=r"more than the .* available.*--force"):
        plan_training(base, data, None, quick(), available_bytes=10 * 1024**2)
    plan = plan_training(base, data, None, quick(), available_bytes=10 * 1024**2,
                         force=True)
    assert RunStore().get(plan.run_id).state == "created"



def test_a_full_disk_at_checkpoint_time_fails_in_one_line_and_leaves_no_partial(
        base: Path, data: Path) -> None:
    store = RunStore()
    plan = plan_training(base, data, None, quick(method="full", iters=8, save_every=4),
                         PLENTY, store=store)
    before = data.read_bytes()
    job = Job("tests.support.job_targets:train_with_file_size_limit", (plan, 200_000))
    with pytest.raises(JobFailed, match="Could not write the checkpoint of step 4"):
        job.run()
    run = store.get(plan.run_id)
    assert run.state == "failed" and "checkpoint of step 4" in run.message
    assert list(run.checkpoints_dir.iterdir()) == []  # nothing half-written kept
    assert data.read_bytes() == before
    assert [r.step for r in store.steps(plan.run_id, "train")] == [1, 2, 3, 4]


def test_a_fuse_that_overflows_float16_is_refused_and_writes_nothing(
        base: Path, data: Path, tmp_path: Path) -> None:
    import mlx.core as mx

    store = RunStore()
    plan = plan_training(base, data, None, quick(iters=2, save_every=2), PLENTY, store=store)
    run_job(plan)
    run = store.get(plan.run_id)
    weights_file = run.adapter_dir / "adapters.safetensors"
    weights = dict(mx.load(str(weights_file)).items())  # type: ignore[union-attr]
    blown = {k: (v + 1.0) * 1e6 if k.endswith("lora_b") else v for k, v in weights.items()}
    mx.save_safetensors(str(weights_file), blown)
    with pytest.raises(JobFailed, match=r"fused into float16 overflows \d+ weight tensor"):
        Job(FUSE_TARGET, (run.id, str(tmp_path / "fused"), str(store.path))).run()
    assert not (tmp_path / "fused").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fused")]
