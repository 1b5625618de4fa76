"""The dataset as training will see it, before a run starts (a job: it loads the
base model's tokenizer): samples, tokens, length histogram under the model's chat
template, truncation, records with nothing to learn, and the warnings."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from macllm_app.core.finetune.config import TrainConfig
from macllm_app.core.finetune.dataset_stats import DatasetSummary, summarize
from macllm_app.core.finetune.train import split_datasets
from macllm_app.core.types import ProgressCallback, StopCheck

PREVIEW_TARGET = f"{__name__}:preview_dataset"
PREVIEW_TITLE = "Reading the dataset"


def tokenizer_for(base: Path, progress: ProgressCallback | None = None,
                  should_stop: StopCheck | None = None) -> Any:
    """The tokenizer training will use: the MLX folder's, or a GGUF file's MLX copy's."""
    from mlx_lm.utils import load_tokenizer

    folder = base
    if not base.is_dir():
        from macllm_app.core.library.mlx_copies import ensure_mlx_copy

        folder = ensure_mlx_copy(base, progress=progress, should_stop=should_stop)
    return load_tokenizer(folder, tokenizer_config_extra={"trust_remote_code": False})


def preview(base: str, train_file: str, valid_file: str | None,
            config: TrainConfig) -> DatasetSummary:
    train, valid = split_datasets(train_file, valid_file, config)
    return summarize(train, tokenizer_for(Path(base)), config.max_seq_length,
                     config.batch_size, config.mask_prompt, valid)


def preview_dataset(base: str, train_file: str, valid_file: str | None,
                    config: dict[str, Any], progress: ProgressCallback | None = None,
                    should_stop: StopCheck | None = None) -> dict[str, Any]:
    """The job: the summary as a dict, with its `warnings` and `blocking` lines."""
    report = progress or (lambda _f, _m: None)
    report(0.0, "Loading the tokenizer")
    summary = preview(base, train_file, valid_file, TrainConfig.from_dict(config))
    report(1.0, "Read the dataset")
    return {**asdict(summary), "warnings": summary.warnings(), "blocking": summary.blocking()}
