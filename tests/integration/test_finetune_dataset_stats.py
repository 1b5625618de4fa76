"""Dataset statistics against mlx-lm's own tuner on a tiny model: the same token counts
as mlx-lm's datasets, truncation, records prompt masking leaves nothing to learn (and
the NaN batch they make in mlx-lm's loss), samples whole batches leave out, and the
faults that stop mlx-lm."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from macllm_app.core.finetune.dataset import Dataset, DatasetError, load_records
from macllm_app.core.finetune.dataset_stats import summarize
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = pytest.mark.mlx
MAX_SEQ = 48
SHORT = {"prompt": "Hi?", "response": "Hello there."}
LONG = {"prompt": "x" * 60, "response": "ok"}  # the prompt alone passes MAX_SEQ


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mlx_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture
def tokenizer(model_folder: Path) -> Any:
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(model_folder)


def _dataset(path: Path, records: list[dict[str, Any]]) -> Dataset:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return load_records(path)


def _mlx_items(dataset: Dataset, tokenizer: Any, mask_prompt: bool) -> Any:
    """mlx-lm's own view: its file loader on to_mlx_records(), in a CacheDataset."""
    from mlx_lm.tuner.datasets import CacheDataset, load_local_dataset

    folder = dataset.path.parent / f"mlx-{dataset.path.stem}"
    folder.mkdir()
    _dataset(folder / "train.jsonl", dataset.to_mlx_records())
    train, _, _ = load_local_dataset(folder, tokenizer, SimpleNamespace(mask_prompt=mask_prompt))
    return CacheDataset(train)


def _pairs(cached: Any) -> list[tuple[int, int]]:
    """(length, offset) of each record."""
    return [(len(cached[i][0]), cached[i][1]) for i in range(len(cached))]


def _records(fmt: str) -> list[dict[str, Any]]:
    prompts = ["Hi?", "What is the capital of France?", "Name a colour.", "y" * 70,
               "Count to three.", "z" * 30]
    replies = ["Hello.", "Paris.", "Blue, or perhaps a deep and quiet green.", "ok",
               "One, two, three.", "w" * 40]
    if fmt == "text":
        return [{"text": p + " " + r} for p, r in zip(prompts, replies, strict=True)]
    if fmt == "chat":
        tools = [{"type": "function", "function": {"name": "now", "parameters": {}}}]
        return [{"messages": [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": p},
                              {"role": "assistant", "content": r}], "tools": tools}
                for p, r in zip(prompts, replies, strict=True)]
    key = "response" if fmt == "prompt-response" else "completion"
    return [{"prompt": p, key: r} for p, r in zip(prompts, replies, strict=True)]


@pytest.mark.parametrize(("fmt", "mask_prompt"), [
    ("prompt-response", True), ("prompt-response", False), ("prompt-completion", True),
    ("chat", True), ("chat", False), ("text", False),
])
def test_token_counts_match_mlx_lm(tmp_path: Path, tokenizer: Any, fmt: str,
                                   mask_prompt: bool) -> None:
    dataset = _dataset(tmp_path / "train.jsonl", _records(fmt))
    assert dataset.format == fmt
    seen: list[float] = []
    summary = summarize(dataset, tokenizer, MAX_SEQ, 2, mask_prompt,
                        progress=lambda f, _m: seen.append(f))
    pairs = _pairs(_mlx_items(dataset, tokenizer, mask_prompt))
    lengths = [length for length, _ in pairs]
    assert summary.samples == len(pairs) == 6
    assert summary.total_tokens == sum(lengths)
    assert (summary.min_length, summary.max_length) == (min(lengths), max(lengths))
    assert summary.median_length == statistics.median(lengths)
    assert sum(summary.histogram_counts) == 6
    assert len(summary.histogram_edges) == len(summary.histogram_counts) + 1 <= 11
    edges = summary.histogram_edges
    assert edges[0] == min(lengths) < max(lengths) < edges[-1]
    assert summary.truncated_lines == [i + 1 for i, n in enumerate(lengths) if n > MAX_SEQ]
    assert summary.truncated >= 1
    masked = [i + 1 for i, (n, offset) in enumerate(pairs) if offset >= min(n, MAX_SEQ)]
    assert summary.masked_away_lines == masked
    assert (4 in masked) if mask_prompt else (masked == [])  # the 70-character prompt
    assert seen[-1] == 1.0


def test_a_transformers_tokenizer_gives_the_same_counts(tmp_path: Path, tokenizer: Any,
                                                        model_folder: Path) -> None:
    from transformers import AutoTokenizer

    dataset = _dataset(tmp_path / "train.jsonl", _records("chat"))
    plain = AutoTokenizer.from_pretrained(model_folder)
    assert summarize(dataset, plain, MAX_SEQ, 2, True) == \
        summarize(dataset, tokenizer, MAX_SEQ, 2, True)


def _mlx_batches(model_folder: Path, cached: Any, batch_size: int) -> list[dict[str, Any]]:
    """Each batch mlx-lm's trainer makes, with its offsets, lengths, loss and target count."""
    from mlx_lm.tuner.trainer import default_loss, iterate_batches
    from mlx_lm.utils import load

    model = load(str(model_folder))[0]
    batches = []
    for batch, spans in iterate_batches(cached, batch_size, MAX_SEQ):
        loss, targets = default_loss(model, batch, spans)
        batches.append({"offsets": spans[:, 0].tolist(), "lengths": spans[:, 1].tolist(),
                        "loss": loss.item(), "targets": targets.item()})
    return batches


def test_a_batch_of_masked_away_records_is_nan_in_mlx_lm_and_blocks(
        tmp_path: Path, tokenizer: Any, model_folder: Path) -> None:
    dataset = _dataset(tmp_path / "train.jsonl", [SHORT] * 4 + [LONG] * 4)
    summary = summarize(dataset, tokenizer, MAX_SEQ, 4, mask_prompt=True)
    assert summary.masked_away_lines == [5, 6, 7, 8]
    assert summary.dead_batches == [[5, 6, 7, 8]]
    [fault] = summary.blocking()
    assert "train.jsonl lines 5, 6, 7, 8" in fault and "NaN" in fault
    batches = _mlx_batches(model_folder, _mlx_items(dataset, tokenizer, True), 4)
    dead = [b for b in batches if b["targets"] == 0]
    assert len(batches) == 2 and len(dead) == 1
    assert math.isnan(dead[0]["loss"])
    assert all(offset >= length for offset, length in zip(dead[0]["offsets"],
                                                          dead[0]["lengths"], strict=True))


def test_masked_away_records_spread_over_batches_only_warn(
        tmp_path: Path, tokenizer: Any, model_folder: Path) -> None:
    dataset = _dataset(tmp_path / "train.jsonl", [SHORT, LONG] * 4)
    summary = summarize(dataset, tokenizer, MAX_SEQ, 4, mask_prompt=True)
    assert summary.masked_away_lines == [2, 4, 6, 8]
    assert summary.dead_batches == [] and summary.blocking() == []
    assert any("4 of 8 samples will teach nothing under prompt masking" in w
               and "lines 2, 4, 6, 8" in w for w in summary.warnings())
    batches = _mlx_batches(model_folder, _mlx_items(dataset, tokenizer, True), 4)
    assert len(batches) == 2 and all(b["targets"] > 0 for b in batches)


def test_every_record_masked_away_blocks(tmp_path: Path, tokenizer: Any) -> None:
    dataset = _dataset(tmp_path / "train.jsonl", [LONG] * 3)
    summary = summarize(dataset, tokenizer, MAX_SEQ, 1, mask_prompt=True)
    assert summary.masked_away == 3
    assert [f for f in summary.blocking() if f.startswith("Every sample will teach nothing")]
    assert not any("teach nothing" in w for w in summary.warnings())
    assert summarize(dataset, tokenizer, 200, 1, mask_prompt=True).blocking() == []
    assert summarize(dataset, tokenizer, MAX_SEQ, 1, mask_prompt=False).blocking() == []


def test_samples_past_the_last_whole_batch_are_never_trained_on(
        tmp_path: Path, tokenizer: Any, model_folder: Path) -> None:
    records = [{"prompt": "q" * i, "response": "a"} for i in range(1, 11)]
    dataset = _dataset(tmp_path / "train.jsonl", records)
    summary = summarize(dataset, tokenizer, MAX_SEQ, 4, mask_prompt=False)
    assert summary.unused_lines == [9, 10]
    assert any(w.startswith("2 of 10 samples will never be trained on") for w in
               summary.warnings())
    cached = _mlx_items(dataset, tokenizer, False)
    trained = {n for b in _mlx_batches(model_folder, cached, 4) for n in b["lengths"]}
    lengths = [length for length, _ in _pairs(cached)]
    assert trained == set(lengths[:8]) and not trained & set(lengths[8:])


def test_sets_smaller_than_the_batch(tmp_path: Path, tokenizer: Any) -> None:
    from mlx_lm.tuner.trainer import iterate_batches

    train = _dataset(tmp_path / "train.jsonl", [SHORT] * 3)
    valid = _dataset(tmp_path / "valid.jsonl", [SHORT] * 2)
    summary = summarize(train, tokenizer, MAX_SEQ, 4, True, valid)
    assert summary.valid_samples == 2 and summary.valid_name == "valid.jsonl"
    assert summary.blocking() == ["The training set has 3 samples, fewer than the batch "
                                  "size 4: lower the batch size or add records."]
    assert any(w.startswith("The validation set has 2 samples, fewer than the batch size 4")
               for w in summary.warnings())
    for dataset in (train, valid):
        with pytest.raises(ValueError, match="at least batch_size=4"):
            next(iterate_batches(_mlx_items(dataset, tokenizer, True), 4, MAX_SEQ))
    assert summarize(train, tokenizer, MAX_SEQ, 1, True, valid).warnings() == []


def test_validation_problems_name_the_validation_file(tmp_path: Path, tokenizer: Any) -> None:
    train = _dataset(tmp_path / "train.jsonl", [SHORT] * 4)
    valid = _dataset(tmp_path / "valid.jsonl", [LONG, LONG, SHORT])
    summary = summarize(train, tokenizer, MAX_SEQ, 2, True, valid)
    assert summary.valid_truncated_lines == summary.valid_masked_away_lines == [1, 2]
    assert summary.valid_dead_batches == [[1, 2]]
    notes = summary.warnings()
    assert len(notes) == 3 and all("valid.jsonl lines 1, 2" in n for n in notes)


def test_prompt_masking_on_text_records_blocks(tmp_path: Path, tokenizer: Any) -> None:
    from mlx_lm.tuner.datasets import create_dataset

    text = _dataset(tmp_path / "text.jsonl", _records("text"))
    assert summarize(text, tokenizer, MAX_SEQ, 2, True).blocking() == [
        "Plain-text records have no prompt to mask: turn prompt masking off, or use "
        "prompt/response or chat records."]
    with pytest.raises(ValueError, match="Prompt masking not supported"):
        create_dataset(text.to_mlx_records(), tokenizer, SimpleNamespace(mask_prompt=True))
    pairs = _dataset(tmp_path / "pairs.jsonl", _records("prompt-response"))
    assert summarize(pairs, tokenizer, MAX_SEQ, 2, True, text).mask_prompt_unsupported


def test_chat_records_not_ending_with_a_reply_warn_under_masking(tmp_path: Path,
                                                                 tokenizer: Any) -> None:
    last_user = {"messages": [{"role": "user", "content": "a"},
                              {"role": "assistant", "content": "b"},
                              {"role": "user", "content": "c"}]}
    dataset = _dataset(tmp_path / "chat.jsonl", [*_records("chat")[:2], last_user])
    masked = summarize(dataset, tokenizer, MAX_SEQ, 1, True)
    assert masked.last_not_assistant_lines == [3]
    assert any("learn their last message" in w and "chat.jsonl line 3" in w
               for w in masked.warnings())
    assert summarize(dataset, tokenizer, MAX_SEQ, 1, False).last_not_assistant_lines == []


def test_a_template_that_rejects_records_is_a_dataset_error(tmp_path: Path,
                                                            tokenizer: Any) -> None:
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}")
    plain = {"messages": [{"role": "user", "content": "a"},
                          {"role": "assistant", "content": "b"}]}
    dataset = _dataset(tmp_path / "chat.jsonl", [plain, *_records("chat")[:2]])
    with pytest.raises(DatasetError) as caught:
        summarize(dataset, tokenizer, MAX_SEQ, 1, True)
    assert [n for n, _ in caught.value.problems] == [2, 3]
    assert str(caught.value).startswith(
        "chat.jsonl: 2 problems: line 2: the model's chat template rejects it (System role "
        "not supported)")


def test_a_model_without_a_chat_template_takes_text_only(tmp_path: Path,
                                                         tokenizer: Any) -> None:
    tokenizer.chat_template = None
    pairs = _dataset(tmp_path / "pairs.jsonl", _records("prompt-response"))
    with pytest.raises(DatasetError, match=r"pairs\.jsonl: the model has no chat template"):
        summarize(pairs, tokenizer, MAX_SEQ, 1, True)
    text = _dataset(tmp_path / "text.jsonl", _records("text"))
    assert summarize(text, tokenizer, MAX_SEQ, 1, False).samples == 6
