"""Fine-tuning data: JSONL files read and checked line by line before mlx-lm sees them.

mlx-lm's tuner picks a record format from the first record only and fails, deep
in training, on any later record that does not fit. Here every line is checked
in plain Python (no tokenizer), and all problems come back at once, each with
its line number, in one `DatasetError`.

Formats, one JSON object a line:

- `{"prompt": ..., "response": ...}`     (prompt-response; mlx-lm calls it completion)
- `{"prompt": ..., "completion": ...}`   (prompt-completion)
- `{"messages": [...], "tools": [...]}`  (chat; tools optional)
- `{"text": ...}`                        (text)
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from macllm_app.core.errors import UserError, one_line

DatasetFormat = Literal["prompt-response", "prompt-completion", "chat", "text"]
FORMATS: tuple[DatasetFormat, ...] = get_args(DatasetFormat)
ROLES = ("system", "user", "assistant", "tool")
MAX_FILE_BYTES = 2 * 1024**3
SHOWN_PROBLEMS = 3

#: The keys each format requires, and the ones it may also have.
_REQUIRED: dict[DatasetFormat, tuple[str, ...]] = {
    "prompt-response": ("prompt", "response"),
    "prompt-completion": ("prompt", "completion"),
    "chat": ("messages",),
    "text": ("text",),
}
_OPTIONAL: dict[DatasetFormat, tuple[str, ...]] = {"chat": ("tools",)}
_EXPECTED = "expected prompt+response, prompt+completion, messages (+tools) or text"

T = TypeVar("T")
Problem = tuple[int, str]


class DatasetError(UserError):
    """A dataset file is missing, unreadable or has bad records (`.problems` lists them)."""

    def __init__(self, message: str, problems: Sequence[Problem] = (),
                 path: Path | None = None) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems)
        self.path = path


@dataclass(slots=True)
class Dataset:
    """The records of one checked JSONL file, all in one format."""

    path: Path
    format: DatasetFormat
    records: list[dict[str, Any]]
    lines: list[int] = field(default_factory=list)  # 1-based line of each record

    def __post_init__(self) -> None:
        if not self.lines:
            self.lines = list(range(1, len(self.records) + 1))
        if len(self.lines) != len(self.records):
            raise ValueError("a Dataset needs one line number per record")

    def __len__(self) -> int:
        return len(self.records)

    def to_mlx_records(self) -> list[dict[str, Any]]:
        """Copies of the records in the keys mlx-lm's `create_dataset` reads."""
        if self.format == "prompt-response":
            return [{"prompt": r["prompt"], "completion": r["response"]} for r in self.records]
        return [dict(r) for r in self.records]

    def split(self, fraction: float = 0.1, seed: int = 0,
              minimum: int = 1) -> tuple[Dataset, Dataset]:
        """`split_validation` on this dataset, keeping each record's line number."""
        train, valid = split_validation(list(zip(self.lines, self.records, strict=True)),
                                        fraction, seed, minimum)
        return self._subset(train), self._subset(valid)

    def _subset(self, pairs: list[tuple[int, dict[str, Any]]]) -> Dataset:
        return Dataset(self.path, self.format, [r for _, r in pairs], [n for n, _ in pairs])


def load_records(path: str | Path) -> Dataset:
    """Read and check every line of a JSONL dataset; raise `DatasetError` on any problem."""
    path = Path(path)
    _check_file(path)
    parsed: list[tuple[int, DatasetFormat | None, dict[str, Any], list[str]]] = []
    problems: list[Problem] = []
    for number, text in _lines(path):
        if not text.strip():
            continue
        record, fmt, found = _check_line(text)
        if record is None:
            problems.extend((number, p) for p in found)
        else:
            parsed.append((number, fmt, record, found))
    if not parsed and not problems:
        raise DatasetError(f"{path.name}: the file has no records", path=path)
    first = next(((n, fmt) for n, fmt, _, found in parsed if fmt and not found), None)
    for number, fmt, _, found in parsed:
        problems.extend((number, p) for p in found)
        if first and fmt and fmt != first[1]:
            problems.append((number, f"a {fmt} record, but the first good record "
                                     f"(line {first[0]}) is {first[1]}"))
    if problems or first is None:
        raise _error(path, sorted(problems, key=lambda p: p[0]))
    return Dataset(path, first[1], [r for _, _, r, _ in parsed], [n for n, _, _, _ in parsed])


def split_validation(records: Sequence[T], fraction: float = 0.1, seed: int = 0,
                     minimum: int = 1) -> tuple[list[T], list[T]]:
    """Set aside about `fraction` of the records (at least `minimum`) for validation.

    The same records, fraction and seed always give the same split; both parts
    keep the original order.
    """
    if not 0 < fraction < 1 or minimum < 1:
        raise ValueError(f"bad split: fraction={fraction}, minimum={minimum}")
    total = len(records)
    if total < 2:
        raise DatasetError(f"{total} record{'s' if total != 1 else ''} cannot be split into "
                           "training and validation sets: add records or a validation file")
    count = max(minimum, int(total * fraction + 0.5))
    if count > total - 1:
        raise DatasetError(f"{total} records are too few to set {count} aside for validation "
                           "and keep some for training: add records or a validation file")
    chosen = set(random.Random(seed).sample(range(total), count))
    train = [r for i, r in enumerate(records) if i not in chosen]
    valid = [r for i, r in enumerate(records) if i in chosen]
    return train, valid


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def describe_problems(name: str, problems: Sequence[Problem]) -> str:
    """`name: 3 problems: line 4: ...; line 7: ...; and 1 more` (one line)."""
    shown = "; ".join(f"line {n}: {one_line(p)}" for n, p in problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    tail = f"; and {more} more" if more > 0 else ""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return f"{name}: {count}: {shown}{tail}"


def _error(path: Path, problems: list[Problem]) -> DatasetError:
    return DatasetError(describe_problems(path.name, problems), problems, path)


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file", path=path) from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({one_line(exc.strerror)})",
                           path=path) from None
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder, not a JSONL file", path=path)
    if size == 0:
        raise DatasetError(f"{path.name}: the file is empty", path=path)
    if size > MAX_FILE_BYTES:
        raise DatasetError(f"{path.name}: {size / 1024**3:.1f} GiB is more than the "
                           f"{MAX_FILE_BYTES // 1024**3} GiB a dataset may have", path=path)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Each line of a UTF-8 file, numbered from 1, less any byte-order mark (files
    joined with `cat` carry one at the start of a later line)."""
    try:
        with path.open("rb") as file:
            for number, raw in enumerate(file, start=1):
                if number == 1:
                    _check_encoding(path, raw)
                yield number, _decode(path, number, raw.removeprefix(b"\xef\xbb\xbf"))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({one_line(exc.strerror)})",
                           path=path) from None


def _check_encoding(path: Path, first: bytes) -> None:
    if first.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DatasetError(f"{path.name}: the file is UTF-16 text; save it as UTF-8",
                           path=path)


def _decode(path: Path, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"line {number}, byte {exc.start + 1}"
        raise DatasetError(f"{path.name}: the file is not UTF-8 text ({where}); "
                           "save it as UTF-8", [(number, "not UTF-8 text")], path) from None


def _check_line(text: str) -> tuple[dict[str, Any] | None, DatasetFormat | None, list[str]]:
    """The record, its format (None when unknown) and its problems."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, None, [f"not valid JSON ({exc.msg})"]
    if not isinstance(record, dict):
        return None, None, [f"not a JSON object ({_kind(record)})"]
    fmt, problems = _format_of(record)
    if fmt is not None:
        problems += _check_fields(fmt, record)
    return record, fmt, problems


def _format_of(record: dict[str, Any]) -> tuple[DatasetFormat | None, list[str]]:
    keys = set(record)
    fmt = _intended_format(keys)
    if fmt is None:
        names = ", ".join(sorted(keys)) or "none"
        return None, [f"unknown keys ({names}): {_EXPECTED}"]
    extra = keys - {*_REQUIRED[fmt], *_OPTIONAL.get(fmt, ())}
    if "prompt" in keys and not keys & {"response", "completion"}:
        unexpected = f" (unexpected keys: {', '.join(sorted(extra))})" if extra else ""
        return None, [f"missing 'response' or 'completion'{unexpected}"]
    if extra:
        return fmt, [f"unexpected keys in a {fmt} record: {', '.join(sorted(extra))}"]
    return fmt, []


def _intended_format(keys: set[str]) -> DatasetFormat | None:
    if "messages" in keys:
        return "chat"
    if "prompt" in keys or "completion" in keys or "response" in keys:
        return "prompt-response" if "response" in keys and "completion" not in keys \
            else "prompt-completion"
    if "text" in keys:
        return "text"
    return None


def _check_fields(fmt: DatasetFormat, record: dict[str, Any]) -> list[str]:
    if fmt == "chat":
        return _check_chat(record)
    return [problem for key in _REQUIRED[fmt] if (problem := _check_text(record, key))]


def _check_text(holder: dict[str, Any], key: str) -> str | None:
    if key not in holder:
        return f"missing '{key}'"
    value = holder[key]
    if not isinstance(value, str):
        return f"'{key}' is {_kind(value)}, not a string"
    if not value.strip():
        return f"'{key}' is empty"
    return None


def _check_chat(record: dict[str, Any]) -> list[str]:
    messages = record["messages"]
    problems = _check_tools(record)
    if not isinstance(messages, list) or not messages:
        what = "an empty list" if isinstance(messages, list) else _kind(messages)
        return [*problems, f"'messages' is {what}, not a list of messages"]
    for index, message in enumerate(messages, start=1):
        problems += _check_message(index, message)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append("no assistant message: there is nothing to learn")
    return problems


def _check_tools(record: dict[str, Any]) -> list[str]:
    if "tools" not in record:
        return []
    tools = record["tools"]
    if not isinstance(tools, list):
        return [f"'tools' is {_kind(tools)}, not a list"]
    if not all(isinstance(tool, dict) for tool in tools):
        return ["'tools' holds something other than objects"]
    return []


def _check_message(index: int, message: object) -> list[str]:
    label = f"message {index}: "
    if not isinstance(message, dict):
        return [f"{label}not an object ({_kind(message)})"]
    problems = []
    role = message.get("role")
    if "role" not in message:
        problems.append(f"{label}missing 'role'")
    elif role not in ROLES:
        problems.append(f"{label}unknown role {json.dumps(role)} "
                        f"(allowed: {', '.join(ROLES)})")
    if message.get("tool_calls"):  # an assistant calling tools may say nothing
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            problems.append(f"{label}'content' is {_kind(content)}, not a string")
    elif problem := _check_text(message, "content"):
        problems.append(f"{label}{problem}")
    return problems


def _kind(value: object) -> str:
    """A JSON value's kind in plain words: "a number", "an object"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
