"""A dataset as mlx-lm's trainer will see it: token lengths, truncation, prompt masking,
batches, and the faults that would make training fail or learn nothing.

Records are tokenized by mlx-lm's own tuner datasets, so this imports mlx-lm: run it
in a job, never in the GUI process.

Under prompt masking mlx-lm learns only the tokens after a record's completion
offset and before its (truncated) end. A record whose offset reaches that end
has nothing to learn; a batch made only of such records has a 0/0 (NaN) loss,
and its NaN gradients spoil the weights.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from macllm_app.core.errors import one_line
from macllm_app.core.finetune.dataset import (
    Dataset,
    DatasetError,
    DatasetFormat,
    describe_problems,
)
from macllm_app.core.types import ProgressCallback

HISTOGRAM_BINS = 10
SHOWN_LINES = 5
_PROGRESS_EVERY = 256


@dataclass(slots=True)
class _Tokenized:
    """Per record of one split: token count, completion offset, and mlx-lm's sort key."""

    lengths: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    sort_keys: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """Token statistics of a training set (and its validation set) for one setting."""

    name: str                       # the training file's name
    format: DatasetFormat
    samples: int
    total_tokens: int               # before truncation
    min_length: int
    median_length: float
    max_length: int
    histogram_edges: list[int]      # bin i holds lengths in [edges[i], edges[i + 1])
    histogram_counts: list[int]
    max_seq_length: int
    batch_size: int
    mask_prompt: bool
    truncated_lines: list[int]      # longer than max_seq_length: cut short
    masked_away_lines: list[int]    # nothing to learn under prompt masking
    dead_batches: list[list[int]]   # batches (as lines) of masked-away records only
    unused_lines: list[int]         # left out of every batch: never trained on
    last_not_assistant_lines: list[int]  # chat records whose last message is not a reply
    mask_prompt_unsupported: bool = False  # masking asked for on text records
    valid_name: str | None = None
    valid_samples: int | None = None
    valid_truncated_lines: list[int] = field(default_factory=list)
    valid_masked_away_lines: list[int] = field(default_factory=list)
    valid_dead_batches: list[list[int]] = field(default_factory=list)

    @property
    def truncated(self) -> int:
        return len(self.truncated_lines)

    @property
    def masked_away(self) -> int:
        return len(self.masked_away_lines)

    def blocking(self) -> list[str]:
        """Faults that make mlx-lm fail or corrupt the model: training must not start."""
        faults = []
        if self.mask_prompt_unsupported:
            faults.append("Plain-text records have no prompt to mask: turn prompt masking "
                          "off, or use prompt/response or chat records.")
        if self.samples < self.batch_size:
            faults.append(f"The training set has {_count(self.samples, 'sample')}, fewer "
                          f"than the batch size {self.batch_size}: lower the batch size or "
                          "add records.")
        if self.masked_away and self.masked_away == self.samples:
            faults.append("Every sample will teach nothing under prompt masking: each "
                          f"prompt takes up all of the first {self.max_seq_length} tokens, "
                          "or its reply is empty. Raise the maximum sequence length or "
                          "turn prompt masking off.")
        elif self.dead_batches:
            others = " and others" if len(self.dead_batches) > 1 else ""
            faults.append(f"A batch of {self.batch_size} would hold only samples that teach "
                          f"nothing under prompt masking "
                          f"({_lines(self.name, self.dead_batches[0])}{others}): its loss "
                          "would be NaN and spoil the weights. Raise the maximum sequence "
                          "length, shorten or remove those records, or turn prompt "
                          "masking off.")
        return faults

    def warnings(self) -> list[str]:
        """Problems that leave training possible but worse than it could be."""
        return [*self._train_warnings(), *self._valid_warnings()]

    def _train_warnings(self) -> list[str]:
        notes = []
        of = f"of {self.samples}"
        if self.truncated_lines:
            notes.append(f"{self.truncated} {of} samples will be cut short to "
                         f"{self.max_seq_length} tokens (the longest has {self.max_length}; "
                         f"{_lines(self.name, self.truncated_lines)}).")
        if self.masked_away_lines and self.masked_away < self.samples:
            notes.append(f"{self.masked_away} {of} samples will teach nothing under prompt "
                         f"masking: the prompt takes up all of the first "
                         f"{self.max_seq_length} tokens, or the reply is empty "
                         f"({_lines(self.name, self.masked_away_lines)}).")
        if self.unused_lines:
            notes.append(f"{len(self.unused_lines)} {of} samples will never be trained on: "
                         f"mlx-lm uses only whole batches of {self.batch_size} "
                         f"({_lines(self.name, self.unused_lines)}).")
        if self.last_not_assistant_lines:
            notes.append(f"With prompt masking, {len(self.last_not_assistant_lines)} {of} "
                         "samples will learn their last message, which is not the "
                         f"assistant's ({_lines(self.name, self.last_not_assistant_lines)}).")
        return notes

    def _valid_warnings(self) -> list[str]:
        if self.valid_samples is None or self.valid_name is None:
            return []
        notes, name = [], self.valid_name
        of = f"of {self.valid_samples}"
        if self.valid_samples < self.batch_size:
            notes.append(f"The validation set has {_count(self.valid_samples, 'sample')}, "
                         f"fewer than the batch size {self.batch_size}: mlx-lm stops with "
                         "an error when it validates. Add validation records or lower the "
                         "batch size.")
        if self.valid_truncated_lines:
            notes.append(f"{len(self.valid_truncated_lines)} {of} validation samples will "
                         f"be cut short to {self.max_seq_length} tokens "
                         f"({_lines(name, self.valid_truncated_lines)}).")
        if self.valid_masked_away_lines:
            notes.append(f"{len(self.valid_masked_away_lines)} {of} validation samples will "
                         "measure nothing under prompt masking "
                         f"({_lines(name, self.valid_masked_away_lines)}).")
        if self.valid_dead_batches:
            notes.append("A validation batch would hold only samples that measure nothing "
                         f"({_lines(name, self.valid_dead_batches[0])}): the validation "
                         "loss may read NaN.")
        return notes


def summarize(dataset: Dataset, tokenizer: Any, max_seq_length: int, batch_size: int,
              mask_prompt: bool, valid: Dataset | None = None, *,
              progress: ProgressCallback | None = None) -> DatasetSummary:
    """Tokenize `dataset` (and `valid`) as mlx-lm's trainer will, and measure it.

    `tokenizer` is an mlx-lm `TokenizerWrapper` or a transformers tokenizer.
    Raises `DatasetError` when the model's chat template rejects records.
    """
    if max_seq_length < 1 or batch_size < 1:
        raise ValueError(f"bad settings: max_seq_length={max_seq_length}, "
                         f"batch_size={batch_size}")
    formats = {dataset.format, *([valid.format] if valid else [])}
    unsupported = mask_prompt and "text" in formats
    report = progress or (lambda _f, _m: None)
    train = _tokenize(dataset, tokenizer, mask_prompt and dataset.format != "text", report)
    masked = _masked_away(train, max_seq_length)
    batches = _batches(train.sort_keys, batch_size)
    batched = {i for batch in batches for i in batch}
    lengths = train.lengths
    edges, counts = _histogram(lengths)
    summary = DatasetSummary(
        name=dataset.path.name, format=dataset.format, samples=len(dataset),
        total_tokens=sum(lengths), min_length=min(lengths),
        median_length=float(statistics.median(lengths)), max_length=max(lengths),
        histogram_edges=edges, histogram_counts=counts,
        max_seq_length=max_seq_length, batch_size=batch_size, mask_prompt=mask_prompt,
        truncated_lines=_at(dataset, _truncated(train, max_seq_length)),
        masked_away_lines=_at(dataset, masked),
        dead_batches=[_at(dataset, b) for b in _dead(batches, masked)],
        unused_lines=_at(dataset, [i for i in range(len(dataset)) if i not in batched]),
        last_not_assistant_lines=_last_not_assistant(dataset) if mask_prompt else [],
        mask_prompt_unsupported=unsupported,
    )
    if valid is None:
        return summary
    return _with_valid(summary, valid, tokenizer, report)


def _with_valid(summary: DatasetSummary, valid: Dataset, tokenizer: Any,
                report: ProgressCallback) -> DatasetSummary:
    mask = summary.mask_prompt and valid.format != "text"
    tokens = _tokenize(valid, tokenizer, mask, report)
    masked = _masked_away(tokens, summary.max_seq_length)
    batches = _batches(tokens.sort_keys, summary.batch_size)
    return replace(
        summary, valid_name=valid.path.name, valid_samples=len(valid),
        valid_truncated_lines=_at(valid, _truncated(tokens, summary.max_seq_length)),
        valid_masked_away_lines=_at(valid, masked),
        valid_dead_batches=[_at(valid, b) for b in _dead(batches, masked)],
    )


def _tokenize(dataset: Dataset, tokenizer: Any, mask_prompt: bool,
              report: ProgressCallback) -> _Tokenized:
    """Each record through mlx-lm's `create_dataset`, as `mlx_lm.lora` trains on it."""
    from jinja2 import TemplateError
    from mlx_lm.tuner.datasets import CacheDataset, create_dataset

    if dataset.format != "text" and not _has_chat_template(tokenizer):
        raise DatasetError(f"{dataset.path.name}: the model has no chat template, so it "
                           f"cannot learn from {dataset.format} records; use text records",
                           path=dataset.path)
    mlx_dataset = create_dataset(dataset.to_mlx_records(), tokenizer,
                                 SimpleNamespace(mask_prompt=mask_prompt))
    cached = CacheDataset(mlx_dataset)
    result, problems = _Tokenized(), []
    for index, line in enumerate(dataset.lines):
        if index % _PROGRESS_EVERY == 0:
            report(index / len(dataset), f"Tokenizing {dataset.path.name}")
        try:
            tokens, offset = mlx_dataset.process(mlx_dataset[index])
        except TemplateError as exc:
            problems.append((line, f"the model's chat template rejects it ({one_line(exc)})"))
            continue
        result.lengths.append(len(tokens))
        result.offsets.append(offset)
        result.sort_keys.append(cached.itemlen(index))
    if problems:
        raise DatasetError(describe_problems(dataset.path.name, problems), problems,
                           dataset.path)
    report(1.0, f"Tokenized {dataset.path.name}")
    return result


def _has_chat_template(tokenizer: Any) -> bool:
    """A transformers template, or one of mlx-lm's own (a `TokenizerWrapper`'s)."""
    return bool(getattr(tokenizer, "chat_template", None)
                or getattr(tokenizer, "_chat_template", None))


def _truncated(tokens: _Tokenized, max_seq_length: int) -> list[int]:
    return [i for i, length in enumerate(tokens.lengths) if length > max_seq_length]


def _masked_away(tokens: _Tokenized, max_seq_length: int) -> list[int]:
    """Records whose completion offset reaches their end after truncation.

    (At offset == length < max_seq_length mlx-lm's mask still counts one target,
    the padding after the record; that is nothing to learn either.)
    """
    return [i for i, (length, offset) in enumerate(zip(tokens.lengths, tokens.offsets,
                                                       strict=True))
            if offset >= min(length, max_seq_length)]


def _batches(sort_keys: list[int], batch_size: int) -> list[list[int]]:
    """The batches mlx-lm's `iterate_batches` makes, as record indices.

    It sorts by `CacheDataset.itemlen` (stably) and cuts whole batches; the rest
    are in no batch. Only the order in which batches are visited is random.
    """
    order = sorted(range(len(sort_keys)), key=sort_keys.__getitem__)
    return [order[i:i + batch_size]
            for i in range(0, len(order) - batch_size + 1, batch_size)]


def _dead(batches: list[list[int]], masked: list[int]) -> list[list[int]]:
    """The batches made only of masked-away records."""
    away = set(masked)
    return [batch for batch in batches if away.issuperset(batch)]


def _last_not_assistant(dataset: Dataset) -> list[int]:
    if dataset.format != "chat":
        return []
    return [line for line, record in zip(dataset.lines, dataset.records, strict=True)
            if record["messages"][-1].get("role") != "assistant"]


def _histogram(lengths: list[int], bins: int = HISTOGRAM_BINS) -> tuple[list[int], list[int]]:
    """At most `bins` integer bins of equal width covering min..max."""
    low, high = min(lengths), max(lengths)
    width = math.ceil((high - low + 1) / bins)
    count = math.ceil((high - low + 1) / width)
    counts = [0] * count
    for length in lengths:
        counts[(length - low) // width] += 1
    return [low + i * width for i in range(count + 1)], counts


def _at(dataset: Dataset, indices: list[int]) -> list[int]:
    return [dataset.lines[i] for i in indices]


def _count(number: int, singular: str, plural: str = "") -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def _lines(name: str, lines: list[int]) -> str:
    """`train.jsonl lines 4, 9, 17 and 6 more`."""
    shown = ", ".join(map(str, lines[:SHOWN_LINES]))
    more = f" and {len(lines) - SHOWN_LINES} more" if len(lines) > SHOWN_LINES else ""
    return f"{name} line{'s' if len(lines) > 1 else ''} {shown}{more}"
