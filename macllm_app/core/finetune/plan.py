"""Checking a fine-tuning run before it starts (in the caller's process, no mlx):
the base model, the datasets, the parameters and the memory it will need.

Everything that can be refused is refused here, with one line, before a run
is recorded or any file is written.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, replace
from pathlib import Path

from macllm_app.core.errors import UserError
from macllm_app.core.finetune.config import TrainConfig
from macllm_app.core.finetune.dataset import Dataset, file_sha256, load_records
from macllm_app.core.finetune.memory import (
    FitVerdict,
    MemoryEstimate,
    ModelShape,
    estimate,
    fit_verdict,
    read_shape,
)
from macllm_app.core.finetune.runs import Run, RunStore
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.formats.metadata import ModelMetadata

#: Model types mlx-lm trains under another module's name.
_MLX_REMAP = {"mistral": "llama", "llava": "mistral3", "falcon_mamba": "mamba"}


@dataclass(frozen=True)
class TrainPlan:
    """A checked run, recorded in the runs database: what the job needs."""

    run_id: str
    db_path: str
    base: str             # the model the user chose: an MLX folder or a GGUF file
    train_file: str
    valid_file: str | None
    config: TrainConfig
    total_steps: int
    resume: bool = False


@dataclass(frozen=True)
class Preflight:
    """What the pane shows before Start: the memory verdict and the dataset's size."""

    metadata: ModelMetadata
    shape: ModelShape
    memory: MemoryEstimate
    verdict: FitVerdict
    train: Dataset
    valid: Dataset | None
    total_steps: int
    longest_tokens: int  # at most, for the data's longest record

    def estimate_for(self, config: TrainConfig) -> MemoryEstimate:
        """The peak memory of this model and data under `config` (another method, say)."""
        return estimate(self.shape, replace(config, max_seq_length=min(
            config.max_seq_length, self.longest_tokens)))


def mlx_trainable(metadata: ModelMetadata) -> None:
    """Refuse a base model mlx-lm has no training code for."""
    if "mlx" not in metadata.engines and metadata.format != "gguf":
        raise UserError(f"{Path(metadata.path).name} cannot run on MLX, so it cannot be "
                        "fine-tuned here.")
    arch = metadata.architecture.lower()
    spec = importlib.util.find_spec("mlx_lm")
    if spec is None or spec.origin is None:
        raise UserError("Fine-tuning needs mlx-lm, which is not installed.")
    models = Path(spec.origin).parent / "models"
    if not (models / f"{_MLX_REMAP.get(arch, arch)}.py").is_file():
        raise UserError(f"mlx-lm cannot train {arch} models ({Path(metadata.path).name}).")


def shape_of(metadata: ModelMetadata) -> ModelShape:
    """The model's shape: from an MLX folder's config.json, or a GGUF file's metadata
    (whose MLX copy, made when training starts, is the one trained)."""
    path = Path(metadata.path)
    if path.is_dir():
        return read_shape(path)
    needed = (metadata.n_layers, metadata.embedding_length, metadata.n_heads,
              metadata.vocab_size)
    if any(value is None or value <= 0 for value in needed):
        raise UserError(f"{path.name}: its metadata lacks the model's shape, so its "
                        "training memory cannot be estimated.")
    layers, hidden, heads, vocab = (int(v or 0) for v in needed)
    kv = int(metadata.n_kv_heads or heads)
    head_dim = int(metadata.head_dim or hidden // heads)
    attention = hidden * head_dim * (2 * heads + 2 * kv)
    per_layer = max(0, (metadata.n_params - vocab * hidden) // layers - attention)
    intermediate = max(hidden, per_layer // (3 * hidden))
    quantized = metadata.quantization.upper() not in ("F32", "F16", "BF16")
    bits = 4.5 if quantized else 16.0  # the MLX copy of a quantized GGUF is 4-bit
    return ModelShape(layers, hidden, intermediate, heads, kv, head_dim, vocab, bits / 8,
                      quantized)


#: Tokens a chat template may add around a record's text.
TEMPLATE_TOKENS = 64


def longest_tokens(dataset: Dataset) -> int:
    """At most how many tokens the dataset's longest record takes: one per UTF-8 byte
    (a byte-level tokenizer's worst case) plus the chat template's own. Batches are
    padded to their longest record, not to the maximum sequence length."""
    longest = max((len(json.dumps(r, ensure_ascii=False).encode("utf-8"))
                   for r in dataset.records), default=0)
    return longest + TEMPLATE_TOKENS


def preflight(base: str | Path, train_file: str | Path, valid_file: str | Path | None,
              config: TrainConfig, available_bytes: int) -> Preflight:
    """Check everything about a run that can be checked without mlx."""
    config.check()
    metadata = inspect_model(Path(base))
    mlx_trainable(metadata)
    train = load_records(Path(train_file))
    valid = load_records(Path(valid_file)) if valid_file else None
    if valid is not None and valid.format != train.format:
        raise UserError(f"{Path(valid_file or '').name} is in the {valid.format} format, "
                        f"the training set in {train.format}: use one format for both.")
    shape = shape_of(metadata)
    config.layers_for(shape.n_layers)
    n_train = len(train.records) if valid is not None else max(1, len(train.records) * 9 // 10)
    if n_train < config.batch_size:
        raise UserError(f"The training set has {n_train} records for training, fewer than "
                        f"the batch size {config.batch_size}: lower the batch size or add "
                        "records.")
    longest = max(longest_tokens(train), longest_tokens(valid) if valid else 0)
    memory = estimate(shape, replace(config, max_seq_length=min(config.max_seq_length,
                                                                longest)))
    return Preflight(metadata, shape, memory, fit_verdict(memory, available_bytes), train,
                     valid, config.total_iters(n_train), longest)


def plan_training(base: str | Path, train_file: str | Path, valid_file: str | Path | None,
                  config: TrainConfig, available_bytes: int, *, force: bool = False,
                  store: RunStore | None = None) -> TrainPlan:
    """Check the run (see `preflight`), refuse one that will not fit in memory unless
    `force`, and record it in the runs database."""
    checked = preflight(base, train_file, valid_file, config, available_bytes)
    if not checked.verdict.fits and not force:
        raise UserError(f"{checked.verdict.message} Start it anyway with --force.")
    store = store or RunStore()
    run = store.create(
        base_model=str(Path(base).resolve()), method=config.method,
        train_file=str(Path(train_file).resolve()), train_sha256=file_sha256(Path(train_file)),
        valid_file=str(Path(valid_file).resolve()) if valid_file else None,
        valid_sha256=file_sha256(Path(valid_file)) if valid_file else None,
        config=config.to_dict(), total_steps=checked.total_steps,
        estimate_bytes=checked.memory.total)
    return plan_for(run, store)


def plan_for(run: Run, store: RunStore, resume: bool = False) -> TrainPlan:
    return TrainPlan(run.id, str(store.path), run.base_model, run.train_file, run.valid_file,
                     TrainConfig.from_dict(run.config), run.total_steps, resume)


def plan_resume(run_id: str, store: RunStore | None = None,
                extra_steps: int = 0) -> TrainPlan:
    """Continue `run_id` from its last checkpoint (with `extra_steps` more, if asked):
    its datasets must be unchanged since it started."""
    from macllm_app.core.finetune.checkpoints import latest_checkpoint

    store = store or RunStore()
    run = store.find(run_id)
    if run.state == "running":
        raise UserError(f"Run {run.id} is still running.")
    for path, digest in ((run.train_file, run.train_sha256),
                         (run.valid_file, run.valid_sha256)):
        if path is None:
            continue
        if not Path(path).is_file():
            raise UserError(f"Run {run.id} cannot resume: its dataset {path} is gone.")
        if file_sha256(Path(path)) != digest:
            raise UserError(f"Run {run.id} cannot resume: {Path(path).name} changed since "
                            "the run started.")
    last = latest_checkpoint(run.checkpoints_dir)
    if last is None:
        raise UserError(f"Run {run.id} has no checkpoint to resume from.")
    total = run.total_steps + max(0, extra_steps)
    if last.step >= total:
        raise UserError(f"Run {run.id} already trained all {total} steps; ask for more "
                        "steps to continue it.")
    if total != run.total_steps:
        store.update(run.id, total_steps=total)
        run = replace(run, total_steps=total)
    return plan_for(run, store, resume=True)
