"""The training job (a child process): mlx-lm's tuner on a checked `TrainPlan`.

mlx-lm's `train` runs the loop; this module sets the model up for the method
(LoRA, DoRA, QLoRA, full), builds the datasets with mlx-lm's own classes from
records we validated, and hooks a `TrainingCallback` in that, after every step,
records the metrics (runs database and `report`), writes a checkpoint every
`save_every` steps, stops on a NaN or exploding loss, and stops on request
with the adapter of the last step saved. A resumed run loads its last
checkpoint's weights and optimizer state and goes on from its step.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from macllm_app.core.errors import UserError
from macllm_app.core.finetune.checkpoints import (
    latest_checkpoint,
    write_adapter,
    write_checkpoint,
)
from macllm_app.core.finetune.config import QLORA_BITS, QLORA_GROUP_SIZE, TrainConfig
from macllm_app.core.finetune.dataset import Dataset, DatasetError, load_records
from macllm_app.core.finetune.dataset_stats import summarize
from macllm_app.core.finetune.plan import TrainPlan
from macllm_app.core.finetune.runs import Run, RunStore, StepRecord
from macllm_app.core.types import ProgressCallback, StopCheck

TRAIN_TARGET = f"{__name__}:train_run"
TRAIN_TITLE = "Fine-tuning"
#: A loss this many times the first one (and above 8 nats) means the run diverged.
EXPLODE_FACTOR = 4.0
#: How long a stopped run gets to save its adapter before it is killed.
STOP_GRACE_S = 120.0


@dataclass(frozen=True)
class StepEvent:
    """One reported step, as the pane's chart and the CLI's progress line get it."""

    run_id: str
    step: int
    total: int
    kind: str                 # "train" or "valid"
    loss: float
    learning_rate: float | None = None
    iters_per_s: float | None = None
    tokens_per_s: float | None = None
    trained_tokens: int | None = None
    peak_memory_bytes: int | None = None  # the larger of mlx's peak and the process RSS
    eta_s: float | None = None
    mlx_peak_memory_bytes: int | None = None  # mlx's own peak (`mx.get_peak_memory()`)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainingDiverged(UserError):
    """The loss became NaN or exploded."""


class _StopRequested(Exception):
    pass


def split_datasets(train_file: str, valid_file: str | None,
                   config: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training and validation sets: both files, or a split of the one (at least a
    batch for validation when the data allows)."""
    train = load_records(Path(train_file))
    if valid_file:
        return train, load_records(Path(valid_file))
    minimum = config.batch_size if len(train) >= 2 * config.batch_size else 1
    return train.split(seed=config.seed, minimum=minimum)


class LossGuard:
    """Stops a run whose loss became NaN or infinite, or exploded past
    `EXPLODE_FACTOR` times its first value (and 8 nats)."""

    def __init__(self) -> None:
        self.first: float | None = None

    def check(self, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"Training stopped at step {step}: the loss became {loss} (likely causes: a "
                "learning rate too high for this model, or a batch with nothing to learn "
                "under prompt masking).")
        if self.first is None:
            self.first = loss
        elif loss > max(8.0, EXPLODE_FACTOR * self.first):
            raise TrainingDiverged(
                f"Training stopped at step {step}: the loss exploded from "
                f"{self.first:.2f} to {loss:.2f} (likely cause: a learning rate too high; "
                "try a tenth of it, or add warm-up).")


def train_run(plan: TrainPlan, progress: ProgressCallback, should_stop: StopCheck,
              report: Callable[[Any], None]) -> dict[str, Any]:
    """The job. Returns the run (as a dict) in its final state; raises UserError on a
    fault (the run is marked failed, its checkpoints kept)."""
    store = RunStore(Path(plan.db_path))
    started = time.monotonic()
    store.update(plan.run_id, state="running", pid=os.getpid(), message="")
    run = store.get(plan.run_id)
    session = _Session(plan, run, store, progress, should_stop, report)
    log_path = Path(run.run_dir) / "train.log"
    try:
        with log_path.open("a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
            state, message = session.train()  # mlx-lm prints its own progress: to the log
    except _StopRequested:
        state, message = "stopped", f"stopped at step {session.step}; adapter saved"
    except UserError as exc:
        store.update(plan.run_id, state="failed", message=str(exc), pid=None,
                     duration_s=run.duration_s + time.monotonic() - started,
                     peak_memory_bytes=session.peak, step=session.step)
        raise
    except BaseException as exc:
        store.update(plan.run_id, state="failed", message=f"{type(exc).__name__}: {exc}",
                     pid=None, duration_s=run.duration_s + time.monotonic() - started,
                     peak_memory_bytes=session.peak, step=session.step)
        raise
    store.update(plan.run_id, state=state, message=message, pid=None, step=session.step,
                 duration_s=run.duration_s + time.monotonic() - started,
                 peak_memory_bytes=max(session.peak, run.peak_memory_bytes))
    progress(1.0, message)
    return store.get(plan.run_id).to_dict()


class _Session:
    """One job's training: the model, data, optimizer and the callback's bookkeeping."""

    def __init__(self, plan: TrainPlan, run: Run, store: RunStore,
                 progress: ProgressCallback, should_stop: StopCheck,
                 report: Callable[[Any], None]) -> None:
        self.plan, self.run, self.store = plan, run, store
        self.config: TrainConfig = plan.config
        self.progress, self.should_stop, self.report = progress, should_stop, report
        self.step = 0
        self.trained_tokens = 0
        self.guard = LossGuard()
        self.peak = 0
        self.model: Any = None
        self.optimizer: Any = None
        self.adapter_config: dict[str, Any] = {}
        self._offset = 0
        self._tokens_at_start = 0

    # -- set-up -------------------------------------------------------------------
    def train(self) -> tuple[str, str]:
        import mlx.core as mx
        import numpy as np
        from mlx_lm.tuner.trainer import TrainingArgs, train

        config = self.config
        if config.cache_limit_bytes:
            mx.set_cache_limit(config.cache_limit_bytes)
        base = self._mlx_base()
        self.progress(0.0, "Loading the base model")
        model, tokenizer = self._load(base)
        train_set, valid_set = self._datasets(tokenizer)
        mx.random.seed(config.seed)  # the adapters' initial weights, as mlx_lm.lora seeds them
        start_step = self._prepare(model, base)
        remaining = self.plan.total_steps - start_step
        mx.random.seed(config.seed + start_step)
        np.random.seed(config.seed + start_step)
        self.progress(start_step / self.plan.total_steps,
                      f"Training from step {start_step}" if start_step else "Training")
        scratch = Path(self.run.run_dir) / ".mlx-lm-final.safetensors"
        args = TrainingArgs(
            batch_size=config.batch_size, iters=remaining, val_batches=config.val_batches,
            steps_per_report=1, steps_per_eval=config.steps_per_eval,
            steps_per_save=10**9, adapter_file=str(scratch),
            max_seq_length=config.max_seq_length, grad_checkpoint=config.grad_checkpoint,
            grad_accumulation_steps=config.grad_accumulation,
            clear_cache_threshold=config.cache_limit_bytes)
        try:
            train(model=model, optimizer=self.optimizer, train_dataset=train_set,
                  val_dataset=valid_set, args=args,
                  training_callback=cast(Any, _Callback(self)))
        except _StopRequested:
            self._save_adapter()
            raise
        except ValueError as exc:
            raise UserError(f"mlx-lm could not train on this data: {exc}") from None
        finally:
            scratch.unlink(missing_ok=True)
        self._save_adapter()
        self._checkpoint()
        return "finished", f"finished {self.step} steps"

    def _mlx_base(self) -> Path:
        base = Path(self.plan.base)
        if base.is_dir():
            return base
        from macllm_app.core.library.mlx_copies import ensure_mlx_copy

        return ensure_mlx_copy(base, progress=lambda f, m: self.progress(0.0, m),
                               should_stop=self.should_stop)

    def _load(self, base: Path) -> tuple[Any, Any]:
        from mlx_lm.utils import load

        try:
            model, tokenizer = load(str(base), tokenizer_config={"trust_remote_code": False})[:2]
        except (ValueError, KeyError, OSError) as exc:
            raise UserError(f"mlx-lm cannot load {base.name} for training: {exc}") from None
        return model, tokenizer

    def _datasets(self, tokenizer: Any) -> tuple[Any, Any]:
        from types import SimpleNamespace

        from mlx_lm.tuner.datasets import CacheDataset, create_dataset

        train, valid = split_datasets(self.plan.train_file, self.plan.valid_file,
                                      self.config)
        summary = summarize(train, tokenizer, self.config.max_seq_length,
                            self.config.batch_size, self.config.mask_prompt, valid)
        if summary.blocking():
            raise DatasetError(summary.blocking()[0])
        for note in summary.warnings():
            self.report({"kind": "note", "run_id": self.plan.run_id, "text": note})
        options = SimpleNamespace(mask_prompt=self.config.mask_prompt, prompt_feature="prompt",
                                  completion_feature="completion", text_feature="text",
                                  chat_feature="messages")
        made = [CacheDataset(create_dataset(part.to_mlx_records(), tokenizer, options))
                for part in (train, valid)]
        if len(valid) < self.config.batch_size:  # mlx-lm cannot batch it
            return made[0], None
        return made[0], made[1]

    def _prepare(self, model: Any, base: Path) -> int:
        """Apply the method to `model`, make the optimizer, load a checkpoint when
        resuming; the step training starts from."""
        import mlx.core as mx
        import mlx.optimizers as optim
        from mlx import nn
        from mlx.utils import tree_flatten, tree_unflatten
        from mlx_lm.tuner.utils import build_schedule, linear_to_lora_layers

        config = self.config
        model.freeze()
        layers = config.layers_for(len(model.layers))
        quantized = any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules())
        if config.method == "qlora" and not quantized:
            nn.quantize(model, group_size=QLORA_GROUP_SIZE, bits=QLORA_BITS)
        if config.method == "full":
            if quantized:
                from mlx_lm.utils import dequantize_model

                model = dequantize_model(model)
                model.set_dtype(mx.float32)
            model.freeze()
            for layer in model.layers[-layers:]:
                layer.unfreeze()
        else:
            linear_to_lora_layers(model, layers, config.lora_parameters(),
                                  use_dora=config.method == "dora")
        self.adapter_config = {
            "fine_tune_type": "full" if config.method == "full" else
            ("dora" if config.method == "dora" else "lora"),
            "num_layers": layers, "lora_parameters": config.lora_parameters(),
            "model": str(base), "base_model": self.plan.base, "method": config.method,
            "quantized_base": bool(quantized or config.method == "qlora"),
            "macllm_run": self.plan.run_id}
        schedule = config.lr_schedule(self.plan.total_steps)
        rate = build_schedule(schedule) if schedule else config.learning_rate
        optimizers = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD,
                      "adafactor": optim.Adafactor}
        self.optimizer = optimizers[config.optimizer](learning_rate=rate)
        self.model = model
        start = 0
        if self.plan.resume:
            last = latest_checkpoint(Path(self.run.run_dir) / "checkpoints")
            if last is None:
                raise UserError(f"Run {self.plan.run_id} has no checkpoint to resume from.")
            model.load_weights(str(last.weights), strict=False)
            if last.optimizer.is_file():
                self.optimizer.init(model.trainable_parameters())
                saved = cast(dict[str, Any], mx.load(str(last.optimizer)))
                state = dict(tree_flatten(self.optimizer.state))
                state.update(saved)
                self.optimizer.state = tree_unflatten(list(state.items()))
            start, self.trained_tokens = last.step, last.trained_tokens
        self.step = self._offset = start
        self._tokens_at_start = self.trained_tokens
        return start

    # -- during training ----------------------------------------------------------
    def on_train(self, info: dict[str, Any]) -> None:
        step = self._offset + int(info["iteration"])
        loss = float(info["train_loss"])
        self.step = step
        self.trained_tokens = self._tokens_at_start + int(info["trained_tokens"])
        mlx_peak = int(float(info["peak_memory"]) * 1e9)
        self.peak = max(self.peak, mlx_peak, _rss())
        self.guard.check(step, loss)
        rate = float(info["iterations_per_second"])
        eta = (self.plan.total_steps - step) / rate if rate > 0 else None
        event = StepEvent(self.plan.run_id, step, self.plan.total_steps, "train", loss,
                          float(info["learning_rate"]), rate,
                          float(info["tokens_per_second"]), self.trained_tokens,
                          self.peak, eta, mlx_peak)
        self._record(event)
        self.progress(step / self.plan.total_steps,
                      f"step {step} of {self.plan.total_steps}, loss {loss:.3f}"
                      + (f", about {eta:.0f} s left" if eta is not None else ""))
        if step % self.config.save_every == 0 and step < self.plan.total_steps:
            self._checkpoint()
        if self.should_stop():
            raise _StopRequested

    def on_valid(self, info: dict[str, Any]) -> None:
        step = self._offset + int(info["iteration"])
        loss = float(info["val_loss"])
        self._record(StepEvent(self.plan.run_id, step, self.plan.total_steps, "valid", loss))

    def _record(self, event: StepEvent) -> None:
        self.store.add_step(self.plan.run_id, StepRecord(
            event.step, event.kind, event.loss, event.learning_rate, event.iters_per_s,
            event.tokens_per_s, event.trained_tokens, event.peak_memory_bytes), self.peak)
        self.report(event.to_dict())

    # -- saving -------------------------------------------------------------------
    def _weights(self) -> dict[str, Any]:
        from mlx.utils import tree_flatten

        return dict(tree_flatten(self.model.trainable_parameters()))

    def _checkpoint(self) -> None:
        from mlx.utils import tree_flatten

        flat = cast(list[tuple[str, Any]], tree_flatten(self.optimizer.state))
        optimizer_state = {k: v for k, v in flat if hasattr(v, "shape")}
        write_checkpoint(Path(self.run.run_dir) / "checkpoints", self.step, self._weights(),
                         optimizer_state, {"trained_tokens": self.trained_tokens})

    def _save_adapter(self) -> None:
        write_adapter(Path(self.run.run_dir) / "adapter", self._weights(),
                      {**self.adapter_config, "step": self.step})


class _Callback:
    """mlx-lm's `TrainingCallback` interface, forwarding to the session."""

    def __init__(self, session: _Session) -> None:
        self.session = session

    def on_train_loss_report(self, train_info: dict[str, Any]) -> None:
        self.session.on_train(train_info)

    def on_val_loss_report(self, val_info: dict[str, Any]) -> None:
        self.session.on_valid(val_info)


def _rss() -> int:
    from macllm_app.core.platform.memory import current_rss_bytes

    return current_rss_bytes(os.getpid())
