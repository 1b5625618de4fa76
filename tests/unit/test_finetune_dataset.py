"""Fine-tuning datasets read in plain Python: every format, every bad line named by its
number in one line of text, file-level faults, the shipped examples, and the
deterministic validation split."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from macllm_app.core.errors import UserError, describe
from macllm_app.core.finetune import dataset as dataset_module
from macllm_app.core.finetune.dataset import (
    Dataset,
    DatasetError,
    file_sha256,
    load_records,
    split_validation,
)

ROOT = Path(__file__).resolve().parents[2]
PAIR = {"prompt": "What is 2 + 2?", "response": "4."}
CHAT = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hi"},
                     {"role": "assistant", "content": "Hello."}]}


def _write(path: Path, *lines: object) -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _problems(path: Path) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        load_records(path)
    return caught.value


@pytest.mark.parametrize(("records", "expected"), [
    ([PAIR, {"prompt": "a", "response": "b"}], "prompt-response"),
    ([{"prompt": "a", "completion": "b"}], "prompt-completion"),
    ([CHAT, {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}]}], "chat"),
    ([{"text": "Once upon a time."}, {"text": "The end."}], "text"),
])
def test_each_format_loads(tmp_path: Path, records: list[dict[str, Any]],
                           expected: str) -> None:
    loaded = load_records(_write(tmp_path / "train.jsonl", *records))
    assert loaded.format == expected
    assert loaded.records == records
    assert loaded.lines == list(range(1, len(records) + 1))
    assert loaded.path == tmp_path / "train.jsonl"


def test_blank_lines_bom_and_crlf_are_fine_and_lines_keep_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    body = f"{json.dumps(PAIR)}\r\n\r\n   \n{json.dumps(PAIR)}\r\n\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    loaded = load_records(path)
    assert loaded.lines == [1, 4]
    assert len(loaded) == 2


def test_an_assistant_calling_tools_may_have_no_content(tmp_path: Path) -> None:
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}
    record = {"messages": [{"role": "user", "content": "Weather?"}, call,
                           {"role": "tool", "content": "Sunny"},
                           {"role": "assistant", "content": "It is sunny."}]}
    assert load_records(_write(tmp_path / "t.jsonl", record)).format == "chat"


@pytest.mark.parametrize(("first", "bad", "message"), [
    (PAIR, '{"prompt": "a" "response": "b"}', "not valid JSON (Expecting ',' delimiter)"),
    (PAIR, "[1, 2]", "not a JSON object (a list)"),
    (PAIR, {"text": "x"}, "a text record, but the first good record (line 1) is "
                          "prompt-response"),
    (PAIR, CHAT, "a chat record, but the first good record (line 1) is prompt-response"),
    (PAIR, {"prompt": "a", "completion": "b"},
     "a prompt-completion record, but the first good record (line 1) is prompt-response"),
    (PAIR, {"question": "a", "answer": "b"}, "unknown keys (answer, question)"),
    (PAIR, {}, "unknown keys (none)"),
    (PAIR, {**PAIR, "id": 3}, "unexpected keys in a prompt-response record: id"),
    (PAIR, {"prompt": "a"}, "missing 'response' or 'completion'"),
    (PAIR, {"response": "b"}, "missing 'prompt'"),
    (PAIR, {"prompt": "  ", "response": "b"}, "'prompt' is empty"),
    (PAIR, {"prompt": "a", "response": 5}, "'response' is a number, not a string"),
    (PAIR, {"prompt": None, "response": "b"}, "'prompt' is null, not a string"),
    ({"text": "x"}, {"text": ""}, "'text' is empty"),
    (CHAT, {"messages": "hi"}, "'messages' is a string, not a list of messages"),
    (CHAT, {"messages": []}, "'messages' is an empty list, not a list of messages"),
    (CHAT, {"messages": ["hi", {"role": "assistant", "content": "x"}]},
     "message 1: not an object (a string)"),
    (CHAT, {"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]},
     "message 1: missing 'role'"),
    (CHAT, {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]},
     "message 2: missing 'content'"),
    (CHAT, {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"},
                         {"role": "assistant", "content": "y"}]},
     'message 2: unknown role "bot" (allowed: system, user, assistant, tool)'),
    (CHAT, {"messages": [{"role": "user", "content": ["hi"]},
                         {"role": "assistant", "content": "x"}]},
     "message 1: 'content' is a list, not a string"),
    (CHAT, {"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
    (CHAT, {**CHAT, "tools": {"name": "f"}}, "'tools' is an object, not a list"),
    (CHAT, {**CHAT, "tools": ["f"]}, "'tools' holds something other than objects"),
])
def test_each_bad_line_is_named_with_its_number(tmp_path: Path, first: dict[str, Any],
                                                bad: object, message: str) -> None:
    error = _problems(_write(tmp_path / "train.jsonl", first, first, bad, first))
    assert len(error.problems) == 1
    number, problem = error.problems[0]
    assert number == 3 and problem.startswith(message)
    text = str(error)
    assert text.startswith(f"train.jsonl: 1 problem: line 3: {message}")
    assert "\n" not in text
    assert isinstance(error, UserError) and describe(error) == text


def test_the_first_good_record_sets_the_format(tmp_path: Path) -> None:
    error = _problems(_write(tmp_path / "t.jsonl", {"prompt": "a"}, CHAT, PAIR))
    assert error.problems == [
        (1, "missing 'response' or 'completion'"),
        (3, "a prompt-response record, but the first good record (line 2) is chat"),
    ]


def test_all_problems_are_kept_and_the_first_three_shown(tmp_path: Path) -> None:
    error = _problems(_write(tmp_path / "train.jsonl", PAIR, "{", "", "7", {"text": 1},
                             {"prompt": "", "response": ""}, "null"))
    assert [n for n, _ in error.problems] == [2, 4, 5, 5, 6, 6, 7]
    assert str(error) == (
        "train.jsonl: 7 problems: line 2: not valid JSON (Expecting property name "
        "enclosed in double quotes); line 4: not a JSON object (a number); line 5: "
        "'text' is a number, not a string; and 4 more")
    assert error.path == tmp_path / "train.jsonl"


def test_a_file_with_no_good_record_fails(tmp_path: Path) -> None:
    error = _problems(_write(tmp_path / "t.jsonl", {"text": ""}))
    assert error.problems == [(1, "'text' is empty")]


@pytest.mark.parametrize(("content", "message"), [
    (b"", "t.jsonl: the file is empty"),
    (b"\n  \n\n", "t.jsonl: the file has no records"),
    ('{"text": "a"}\n'.encode("utf-16"), "t.jsonl: the file is UTF-16 text; save it as UTF-8"),
    (b'{"text": "a"}\n{"text": "b"}\n{"text": "caf\xe9"}\n',
     "t.jsonl: the file is not UTF-8 text (line 3, byte 14); save it as UTF-8"),
])
def test_file_level_faults(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    error = _problems(path)
    assert str(error) == message


def test_missing_folder_and_oversized_files(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.jsonl"
    assert str(_problems(missing)) == f"{missing}: no such file"
    assert str(_problems(tmp_path)) == f"{tmp_path}: is a folder, not a JSONL file"
    path = _write(tmp_path / "big.jsonl", PAIR)
    monkeypatch.setattr(dataset_module, "MAX_FILE_BYTES", 10)
    assert "big.jsonl: 0.0 GiB is more than the 0 GiB" in str(_problems(path))


def test_an_unreadable_file_is_a_user_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "t.jsonl", PAIR)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    assert str(_problems(path)) == f"{path}: cannot be read (Permission denied)"


def test_the_shipped_examples_load_cleanly() -> None:
    paths = sorted((ROOT / "resources" / "datasets").glob("*.jsonl"))
    formats = {path.name: load_records(path).format for path in paths}
    assert formats == {"example-chat.jsonl": "chat",
                       "example-prompt-response.jsonl": "prompt-response"}
    assert all(len(load_records(path)) >= 10 for path in paths)


def test_to_mlx_records_uses_the_keys_mlx_lm_reads(tmp_path: Path) -> None:
    pairs = load_records(_write(tmp_path / "p.jsonl", PAIR))
    assert pairs.to_mlx_records() == [{"prompt": PAIR["prompt"], "completion": "4."}]
    with_tools = {**CHAT, "tools": [{"type": "function"}]}
    chat = load_records(_write(tmp_path / "c.jsonl", with_tools))
    converted = chat.to_mlx_records()
    assert converted == [with_tools]
    converted[0]["_dataset"] = 0  # mlx-lm's ConcatenatedDataset writes into records
    assert "_dataset" not in chat.records[0]
    text = Dataset(tmp_path / "x.jsonl", "text", [{"text": "a"}])
    assert text.to_mlx_records() == [{"text": "a"}] and text.lines == [1]


@pytest.mark.parametrize(("total", "fraction", "minimum", "sizes"), [
    (100, 0.1, 1, (90, 10)), (12, 0.1, 1, (11, 1)), (2, 0.1, 1, (1, 1)),
    (12, 0.1, 4, (8, 4)), (10, 0.25, 1, (7, 3)),
])
def test_split_sizes(total: int, fraction: float, minimum: int,
                     sizes: tuple[int, int]) -> None:
    records = list(range(total))
    train, valid = split_validation(records, fraction, minimum=minimum)
    assert (len(train), len(valid)) == sizes
    assert sorted(train + valid) == records
    assert train == sorted(train) and valid == sorted(valid)


def test_split_is_deterministic_and_follows_the_seed() -> None:
    records = [f"r{i}" for i in range(50)]
    assert split_validation(records) == split_validation(list(records))
    assert split_validation(records, seed=1) == split_validation(records, seed=1)
    assert split_validation(records, seed=1)[1] != split_validation(records, seed=2)[1]


def test_split_refuses_too_few_records() -> None:
    for records in ([], ["only"]):
        with pytest.raises(DatasetError, match="cannot be split into training and validation"):
            split_validation(records)
    with pytest.raises(DatasetError, match="3 records are too few to set 3 aside"):
        split_validation([1, 2, 3], minimum=3)
    with pytest.raises(ValueError, match="bad split"):
        split_validation([1, 2, 3], fraction=1.0)


def test_dataset_split_keeps_line_numbers(tmp_path: Path) -> None:
    records = [{"text": f"t{i}"} for i in range(10)]
    loaded = load_records(_write(tmp_path / "t.jsonl", *records[:5], "", *records[5:]))
    train, valid = loaded.split(fraction=0.3)
    assert (len(train), len(valid)) == (7, 3)
    for part in (train, valid):
        assert part.format == "text" and part.path == loaded.path
        for line, record in zip(part.lines, part.records, strict=True):
            assert loaded.records[loaded.lines.index(line)] is record
    assert sorted(train.lines + valid.lines) == loaded.lines


def test_file_sha256_streams(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 1000
    path.write_bytes(data)
    assert file_sha256(path, chunk_bytes=4096) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
