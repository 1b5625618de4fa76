"""Fine-tune settings, the memory estimate's arithmetic, the loss guard and the runs
database, without training anything."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from macllm_app.core.errors import UserError
from macllm_app.core.finetune.config import PRESETS, ConfigError, TrainConfig, with_method
from macllm_app.core.finetune.memory import ModelShape, estimate, fit_verdict
from macllm_app.core.finetune.runs import RunStore, StepRecord
from macllm_app.core.finetune.train import LossGuard, TrainingDiverged

SHAPE_135M = ModelShape(n_layers=30, hidden=576, intermediate=1536, n_heads=9, n_kv_heads=3,
                        head_dim=64, vocab=49152, dtype_bytes=2.0, quantized=False)


@pytest.mark.parametrize(("change", "message"), [
    ({"rank": 0}, "rank"), ({"dropout": 1.0}, "dropout"), ({"learning_rate": 0.0}, "learning"),
    ({"learning_rate": math.nan}, "learning"), ({"num_layers": 0}, "layers"),
    ({"batch_size": 0}, "batch size"), ({"max_seq_length": 8}, "sequence length"),
    ({"warmup_steps": 100, "iters": 100}, "warm-up"), ({"method": "prefix"}, "method"),
    ({"min_learning_rate": 1.0}, "final learning rate"), ({"epochs": 0.0}, "epochs"),
])
def test_out_of_range_settings_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**change).check()  # type: ignore[arg-type]


def test_presets_are_valid_and_round_trip() -> None:
    for config in PRESETS.values():
        config.check()
        assert TrainConfig.from_dict(config.to_dict()) == config


def test_epochs_decide_the_iterations() -> None:
    config = TrainConfig(batch_size=4, epochs=2.5)
    assert config.total_iters(100) == math.ceil(2.5 * 25)
    assert TrainConfig(iters=7).total_iters(100) == 7


def test_schedule_joins_warmup_and_cosine_decay() -> None:
    config = TrainConfig(learning_rate=1e-4, warmup_steps=10, cosine_decay=True,
                         min_learning_rate=1e-6, iters=110)
    schedule = config.lr_schedule(110)
    assert schedule == {"name": "cosine_decay", "arguments": [1e-4, 100, 1e-6], "warmup": 10}
    assert TrainConfig().lr_schedule(100) is None


def test_layers_clamp_and_refuse() -> None:
    assert TrainConfig(num_layers=-1).layers_for(30) == 30
    with pytest.raises(ConfigError, match="40 layers asked for, but the model has 30"):
        TrainConfig(num_layers=40).layers_for(30)


def test_full_fine_tuning_takes_a_smaller_learning_rate() -> None:
    assert with_method(TrainConfig(learning_rate=1e-4), "full").learning_rate == 1e-5
    assert with_method(TrainConfig(learning_rate=1e-4), "dora").learning_rate == 1e-4


def test_memory_estimate_orders_the_methods() -> None:
    base = TrainConfig(num_layers=16, batch_size=4, max_seq_length=512)
    lora = estimate(SHAPE_135M, base)
    qlora = estimate(SHAPE_135M, replace(base, method="qlora"))
    full = estimate(SHAPE_135M, replace(base, method="full"))
    checkpointed = estimate(SHAPE_135M, replace(base, grad_checkpoint=True))
    assert qlora.weights < lora.weights and qlora.trainable == lora.trainable
    assert full.trainable > 10 * lora.trainable
    assert checkpointed.activations < lora.activations
    assert lora.trainable_params == 16 * SHAPE_135M.lora_params(8)


def test_fit_verdict_says_what_to_change() -> None:
    need = estimate(SHAPE_135M, TrainConfig())
    assert fit_verdict(need, 10 * need.total).fits
    tight = fit_verdict(need, int(need.total / 0.9))
    assert tight.fits and "tight" in tight.message
    refused = fit_verdict(need, need.total // 2)
    assert not refused.fits and "batch size" in refused.message


def test_loss_guard_stops_on_nan_and_explosion() -> None:
    guard = LossGuard()
    for step, loss in enumerate([3.0, 2.5, 2.8, 9.0], start=1):
        guard.check(step, loss)
    with pytest.raises(TrainingDiverged, match=r"step 5: the loss exploded from 3\.00 to 12\.50"):
        guard.check(5, 12.5)
    with pytest.raises(TrainingDiverged, match="step 6: the loss became nan"):
        LossGuard().check(6, math.nan)


def test_runs_store_keeps_runs_and_steps(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite3")
    run = store.create(base_model="/m", method="lora", train_file="/t.jsonl", train_sha256="x",
                       valid_file=None, valid_sha256=None, config=TrainConfig().to_dict(),
                       total_steps=10, estimate_bytes=123, run_dir=tmp_path / "run")
    assert run.state == "created" and (tmp_path / "run").is_dir()
    store.add_step(run.id, StepRecord(1, "train", 2.5, 1e-5, 3.0, 100.0, 64, 1000))
    store.add_step(run.id, StepRecord(1, "valid", 2.7))
    store.update(run.id, state="running", pid=999_999_999, step=1)
    assert [s.kind for s in store.steps(run.id)] == ["train", "valid"]
    assert store.find(run.id[:10]).id == run.id and store.find("last").id == run.id
    store.mark_dead_runs(alive=set())
    assert store.get(run.id).state == "killed"
    with pytest.raises(UserError, match="No fine-tune run"):
        store.find("nope")
    with pytest.raises(ValueError, match="cannot update"):
        store.update(run.id, base_model="/other")
