"""Every fine-tuning run, kept in SQLite: what it trained on, how, and how it went.

One row per run (base model, dataset files and hashes, configuration, state,
adapter folder, duration, peak memory) and one row per reported step (train or
validation loss, learning rate, speed). The training job writes its steps as it
goes (WAL, one short transaction each), so a killed run keeps every step it
reported; the pane and the CLI read the same file.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from macllm_app.core import paths
from macllm_app.core.errors import UserError

RunState = Literal["created", "running", "stopped", "finished", "failed", "killed"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    base_model TEXT NOT NULL,
    method TEXT NOT NULL,
    train_file TEXT NOT NULL,
    train_sha256 TEXT NOT NULL,
    valid_file TEXT,
    valid_sha256 TEXT,
    config TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    duration_s REAL NOT NULL DEFAULT 0,
    peak_memory_bytes INTEGER NOT NULL DEFAULT 0,
    estimate_bytes INTEGER NOT NULL DEFAULT 0,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    loss REAL,
    learning_rate REAL,
    iters_per_s REAL,
    tokens_per_s REAL,
    trained_tokens INTEGER,
    peak_memory_bytes INTEGER,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, step, kind)
);
"""


def runs_db_path() -> Path:
    return paths.data_dir() / "finetune.sqlite3"


def runs_dir() -> Path:
    path = paths.data_dir() / "finetune"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Run:
    id: str
    created: float
    base_model: str
    method: str
    train_file: str
    train_sha256: str
    valid_file: str | None
    valid_sha256: str | None
    config: dict[str, Any]
    run_dir: str
    state: RunState
    message: str
    step: int
    total_steps: int
    duration_s: float
    peak_memory_bytes: int
    estimate_bytes: int
    pid: int | None

    @property
    def adapter_dir(self) -> Path:
        return Path(self.run_dir) / "adapter"

    @property
    def checkpoints_dir(self) -> Path:
        return Path(self.run_dir) / "checkpoints"

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["adapter_dir"] = str(self.adapter_dir)
        return out


@dataclass(frozen=True)
class StepRecord:
    step: int
    kind: str  # "train" or "valid"
    loss: float | None
    learning_rate: float | None = None
    iters_per_s: float | None = None
    tokens_per_s: float | None = None
    trained_tokens: int | None = None
    peak_memory_bytes: int | None = None


class RunStore:
    """The runs database (`finetune.sqlite3` in the profile, or `path`)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or runs_db_path()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=10.0)
        except sqlite3.Error as exc:
            raise UserError(f"Cannot open the fine-tune history {self.path}: {exc}") from None
        with closing(conn):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.row_factory = sqlite3.Row
            with conn:
                yield conn

    def create(self, *, base_model: str, method: str, train_file: str, train_sha256: str,
               valid_file: str | None, valid_sha256: str | None, config: dict[str, Any],
               total_steps: int, estimate_bytes: int, run_dir: Path | None = None) -> Run:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        folder = run_dir or runs_dir() / run_id
        folder.mkdir(parents=True, exist_ok=False)
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs (id, created, base_model, method, train_file, train_sha256,"
                " valid_file, valid_sha256, config, run_dir, state, total_steps,"
                " estimate_bytes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, time.time(), base_model, method, train_file, train_sha256,
                 valid_file, valid_sha256, json.dumps(config), str(folder), "created",
                 total_steps, estimate_bytes))
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UserError(f"No fine-tune run {run_id!r}; `macllm finetune list` shows them.")
        return _run(row)

    def find(self, name: str) -> Run:
        """A run by its id or a unique prefix of it ("last" for the newest)."""
        with self._connect() as db:
            if name == "last":
                rows = db.execute("SELECT * FROM runs ORDER BY created DESC LIMIT 1"
                                  ).fetchall()
            else:
                rows = db.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY created DESC",
                                  (name.replace("%", "") + "%",)).fetchall()
        if len(rows) == 1:
            return _run(rows[0])
        if not rows:
            raise UserError(f"No fine-tune run {name!r}; `macllm finetune list` shows them.")
        raise UserError(f"{len(rows)} fine-tune runs start with {name!r}; give more of the id.")

    def all_runs(self) -> list[Run]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
        return [_run(row) for row in rows]

    def update(self, run_id: str, **fields: Any) -> None:
        allowed = {"state", "message", "step", "total_steps", "duration_s",
                   "peak_memory_bytes", "pid", "config"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if "config" in fields:
            fields["config"] = json.dumps(fields["config"])
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {columns} WHERE id = ?", (*fields.values(), run_id))

    def add_step(self, run_id: str, record: StepRecord,
                 peak_memory_bytes: int | None = None) -> None:
        """Keep one reported step; a training step also moves the run's step (and its
        peak memory, when given) in the same transaction."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, record.step, record.kind, record.loss, record.learning_rate,
                 record.iters_per_s, record.tokens_per_s, record.trained_tokens,
                 record.peak_memory_bytes, time.time()))
            if record.kind == "train":
                db.execute("UPDATE runs SET step = ?, peak_memory_bytes = "
                           "MAX(peak_memory_bytes, ?) WHERE id = ?",
                           (record.step, peak_memory_bytes or 0, run_id))

    def steps(self, run_id: str, kind: str | None = None) -> list[StepRecord]:
        query = "SELECT * FROM steps WHERE run_id = ?"
        args: tuple[Any, ...] = (run_id,)
        if kind is not None:
            query += " AND kind = ?"
            args += (kind,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY step, kind", args).fetchall()
        return [StepRecord(row["step"], row["kind"], row["loss"], row["learning_rate"],
                           row["iters_per_s"], row["tokens_per_s"], row["trained_tokens"],
                           row["peak_memory_bytes"]) for row in rows]

    def mark_dead_runs(self, alive: set[int]) -> None:
        """Runs still marked running whose process is gone were killed: say so."""
        for run in self.all_runs():
            if run.state == "running" and run.pid not in alive:
                self.update(run.id, state="killed",
                            message="stopped unexpectedly; resume from its last checkpoint")


def _run(row: sqlite3.Row) -> Run:
    values = dict(row)
    values["config"] = json.loads(values["config"])
    return Run(**values)
