"""Our fine-tune job vs mlx-lm's own `mlx_lm.lora`: same base, data and settings.

Ours: `plan_training` + the training job (`Job(TRAIN_TARGET, ...)`), its step events
taken through `on_event`; it reports every step. Theirs: `python -m mlx_lm lora` as a
subprocess, the same settings on the command line and LoRA's rank, scale and dropout
in a `-c` config file; it reports every `window` steps. mlx-lm 0.32's console shows
only loss, tok/s (rounded) and tokens, so their command runs with one addition: a
`TrainingCallback` (the hook its `--report-to wandb` uses) that prints the trainer's
own report dict as one JSON line. Both sides' figures therefore come from the same
code, mlx-lm's `train`: iterations/s and tokens/s over the trainer's training time
(validation, reporting and saving left out), and mlx's own peak memory
(`mx.get_peak_memory()`; ours from the event's `mlx_peak_memory_bytes`). Our
per-step events are grouped into the same windows as their reports.

Compared, per side (median over the rounds): the median over the steady windows
(those after the first `skip` steps) of iterations/s and tokens/s, and the aggregate
rates; mlx's peak memory; over the steady windows that hold no validation, the
wall-clock rate between the reports' arrivals and the time per step spent outside
the trainer's timing (building the batch and reporting: for ours, every step, the
runs database and the relay to this process: what reporting every step costs); the
whole-run wall time from start to exit (process start, imports, loading, validation
at the first and last step, saving) and the process's peak RSS (VmHWM). Targets
(from the issue): iterations/s and tokens/s >= 0.97 x mlx_lm.lora's, peak memory
<= 1.05 x.

Models: `tiny`, a random-weight 2-layer llama (tests/support/mlx_tiny.py; 100
iterations, windows of 5), and `default`, the MLX copy (4-bit) of the default model,
SmolLM2-135M-Instruct; both sides train the same folder. Data: synthetic short Q/A
records (prompt/completion) written to a temporary folder as train.jsonl and
valid.jsonl, the same files for both. LoRA, rank 8, scale 20, 4 layers (at most the
model's), batch 4, maximum length 256, learning rate 1e-4. MLX's CPU backend is slow
and trains on one thread (one step of the default model at batch 4 takes 30 s or
more on a 2-core machine, so 30 iterations would take a quarter of an hour a run):
the default model runs batch 1, 4 iterations, one step a window, one validation
batch, unless told otherwise (`--default-iters`, `--default-batch-size`, ...).

Each comparison runs one short untimed run of each side (`--warmup-iters`, 0: none),
then `--runs` rounds, ours first in even rounds and theirs first in odd ones. A run
during which other processes kept more than `--max-others` of a core busy (from
/proc/stat, less this process's and its children's CPU time) is run again (at most
`--retries` times a comparison), and each run first waits (up to `--max-wait` s) for
an idle second. MACLLM_HOME points at a temporary folder, so the runs are recorded
in a throwaway database. Top-level imports are kept light: the job's child process
(spawn) imports this script again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_busy_s, own_cpu_s, verdict

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("tiny", "default")
SPEED_TARGET = 0.97
MEMORY_TARGET = 1.05
_TAP_LINE = re.compile(r"@@(train|valid) (\{.*\})")

#: Their command: mlx-lm's own `lora` entry point, with a callback that prints the
#: trainer's report dicts (the hook `--report-to` uses; nothing else changes).
TAP = """\
import json, sys
import mlx_lm.lora as lora
from mlx_lm.tuner.callbacks import TrainingCallback

class Tap(TrainingCallback):
    def on_train_loss_report(self, info):
        print("\\n@@train " + json.dumps(info), flush=True)

    def on_val_loss_report(self, info):
        print("\\n@@valid " + json.dumps(info), flush=True)

lora.get_reporting_callbacks = lambda *args, **kwargs: Tap()
sys.argv = ["mlx_lm.lora", *sys.argv[1:]]
lora.main()
"""


@dataclass(frozen=True)
class Settings:
    """One comparison's training settings, the same on both sides."""

    iters: int
    batch_size: int
    num_layers: int
    rank: int = 8
    scale: float = 20.0
    dropout: float = 0.0
    learning_rate: float = 1e-4
    max_seq_length: int = 256
    window: int = 5       # their steps per report; our per-step events grouped the same way
    skip: int = 5         # steps left out at the start (compilation, first touch of weights)
    val_batches: int = 2
    seed: int = 0

    def check(self) -> None:
        if self.iters % self.window:
            raise SystemExit(f"--iters ({self.iters}) must be a multiple of the report "
                             f"window ({self.window}): mlx-lm rates a short last window "
                             "as a full one")
        if self.skip % self.window or self.skip >= self.iters - self.window:
            raise SystemExit(f"the skipped steps ({self.skip}) must be a multiple of the "
                             f"window ({self.window}) and leave at least two windows of "
                             f"the {self.iters} steps")


@dataclass
class RunResult:
    """One run of one side: its train reports (step, rate figures) and outside timings."""

    wall_s: float
    windows: list[dict[str, float]] = field(default_factory=list)
    peak_mlx_bytes: int = 0
    peak_rss_bytes: int = 0
    final_loss: float = float("nan")
    first_val_loss: float = float("nan")


@dataclass
class Side:
    """A side of a comparison: `run(iters)` does one run and returns its result."""

    name: str
    run: Callable[[int], RunResult]


@dataclass(frozen=True)
class Timing:
    runs: int
    warmup_iters: int
    max_others: float  # the share of one core other processes may use during a run
    retries: int       # runs repeated at most, per comparison, for that load
    max_wait_s: float  # how long to wait for a quiet machine before each run


# -- machine load (as quantize_compare.py) ------------------------------------------------
def wait_quiet(timing: Timing) -> None:
    """Wait (at most `max_wait_s`) until the machine has been idle for a second."""
    deadline = time.monotonic() + timing.max_wait_s
    while time.monotonic() < deadline:
        before = cpu_busy_s()
        time.sleep(1.0)
        after = cpu_busy_s()
        if before is None or after is None or after - before <= timing.max_others:
            return
    print(f"    (the machine stayed busy for {timing.max_wait_s:.0f} s; running anyway)")


class PeakRss:
    """Polls a process's peak RSS (VmHWM in /proc/<pid>/status) while it runs."""

    def __init__(self, pid: Callable[[], int | None]) -> None:
        self._pid = pid
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._done.wait(0.1):
            pid = self._pid()
            if pid is None:
                continue
            try:
                text = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            found = re.search(r"VmHWM:\s+(\d+) kB", text)
            if found:
                self.peak = max(self.peak, int(found.group(1)) * 1024)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


# -- reports to windows ---------------------------------------------------------------
def window_of(step: int, seconds: float, tokens: float, arrived: float) -> dict[str, float]:
    return {"step": step, "seconds": seconds, "tokens": tokens, "arrived": arrived}


def steady(result: RunResult, settings: Settings) -> list[dict[str, float]]:
    """The windows after the first `skip` steps."""
    return [w for w in result.windows if w["step"] > settings.skip]


def rates(result: RunResult, settings: Settings) -> dict[str, float]:
    """The run's figures over its steady windows: the median window's it/s and tok/s and
    the aggregate rates; and, over the steady windows that hold no validation (the
    last one holds the final validation), the wall-clock rate between the reports'
    arrivals and the time per step spent outside the trainer's timing (building the
    batch, reporting: for ours the runs database and the relay to this process)."""
    windows = steady(result, settings)
    its = [settings.window / w["seconds"] for w in windows]
    toks = [w["tokens"] / w["seconds"] for w in windows]
    train_s = sum(w["seconds"] for w in windows)
    arrived = {int(w["step"]): w["arrived"] for w in result.windows}
    timed = [w for w in windows if w["step"] < settings.iters
             and int(w["step"]) - settings.window in arrived]
    wall_s = sum(arrived[int(w["step"])] - arrived[int(w["step"]) - settings.window]
                 for w in timed)
    steps = settings.window * len(timed)
    nan = float("nan")
    return {
        "it_s": statistics.median(its), "tok_s": statistics.median(toks),
        "agg_it_s": settings.window * len(windows) / train_s,
        "agg_tok_s": sum(w["tokens"] for w in windows) / train_s,
        "wall_it_s": steps / wall_s if wall_s > 0 else nan,
        "outside_ms": (1000 * (wall_s - sum(w["seconds"] for w in timed)) / steps
                       if steps else nan),
        "train_s": sum(w["seconds"] for w in result.windows),
    }


# -- data and models ------------------------------------------------------------------
def write_data(folder: Path, n_train: int = 64, n_valid: int = 16, seed: int = 0) -> None:
    """Short Q/A records (prompt/completion), train.jsonl and valid.jsonl."""
    import random

    rng = random.Random(seed)
    people = ("Ann", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana")
    things = ("apples", "pens", "books", "coins", "shells", "stamps")

    def record() -> dict[str, str]:
        if rng.random() < 0.5:
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            return {"prompt": f"What is {a} plus {b}?", "completion": f"{a} plus {b} is {a + b}."}
        who, what, n = rng.choice(people), rng.choice(things), rng.randint(2, 9)
        return {"prompt": f"{who} has {n} {what} and gets one more. How many now?",
                "completion": f"{who} has {n + 1} {what}."}

    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", n_train), ("valid", n_valid)):
        lines = [json.dumps(record()) for _ in range(count)]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def model_layers(folder: Path) -> int:
    config = json.loads((folder / "config.json").read_text())
    return int(config.get("num_hidden_layers") or config["n_layers"])


# -- the two sides --------------------------------------------------------------------
def run_ours(base: Path, data: Path, settings: Settings, store_path: Path,
             iters: int) -> RunResult:
    from macllm_app.core.finetune.config import TrainConfig
    from macllm_app.core.finetune.plan import plan_training
    from macllm_app.core.finetune.runs import RunStore
    from macllm_app.core.finetune.train import TRAIN_TARGET, TRAIN_TITLE
    from macllm_app.core.jobs import Job

    config = TrainConfig(
        method="lora", rank=settings.rank, scale=settings.scale, dropout=settings.dropout,
        num_layers=settings.num_layers, learning_rate=settings.learning_rate,
        batch_size=settings.batch_size, iters=iters, max_seq_length=settings.max_seq_length,
        seed=settings.seed, steps_per_eval=iters, val_batches=settings.val_batches,
        save_every=iters)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    events: list[tuple[float, dict[str, Any]]] = []
    began = time.perf_counter()
    plan = plan_training(base, data / "train.jsonl", data / "valid.jsonl", config, total,
                         force=True, store=RunStore(store_path))
    job = Job(TRAIN_TARGET, (plan,), title=TRAIN_TITLE)
    watcher = PeakRss(lambda: job.pid)
    try:
        job.run(on_event=lambda e: events.append((time.perf_counter(), e)))
    finally:
        rss = watcher.stop()
    result = RunResult(wall_s=time.perf_counter() - began, peak_rss_bytes=rss)
    trains = [(t, e) for t, e in events if e.get("kind") == "train"]
    valids = [e for _, e in events if e.get("kind") == "valid"]
    seconds = tokens = 0.0
    last_tokens = 0
    for arrived, event in trains:
        seconds += 1.0 / float(event["iters_per_s"])
        tokens += int(event["trained_tokens"]) - last_tokens
        last_tokens = int(event["trained_tokens"])
        result.peak_mlx_bytes = max(result.peak_mlx_bytes,
                                    int(event.get("mlx_peak_memory_bytes") or 0))
        if int(event["step"]) % settings.window == 0:
            result.windows.append(window_of(int(event["step"]), seconds, tokens, arrived))
            seconds = tokens = 0.0
    if trains:
        result.final_loss = float(trains[-1][1]["loss"])
    if valids:
        result.first_val_loss = float(valids[0]["loss"])
    return result


def run_theirs(base: Path, data: Path, settings: Settings, out: Path,
               iters: int) -> RunResult:
    out.mkdir(parents=True, exist_ok=True)
    config = out / "lora.yaml"  # YAML reads JSON
    config.write_text(json.dumps({"lora_parameters": {
        "rank": settings.rank, "scale": settings.scale, "dropout": settings.dropout}}))
    args = [sys.executable, "-c", TAP, "--model", str(base), "--train", "--data", str(data),
            "--fine-tune-type", "lora", "--num-layers", str(settings.num_layers),
            "--batch-size", str(settings.batch_size), "--iters", str(iters),
            "--learning-rate", str(settings.learning_rate),
            "--steps-per-report", str(min(settings.window, iters)),
            "--steps-per-eval", str(iters), "--val-batches", str(settings.val_batches),
            "--max-seq-length", str(settings.max_seq_length),
            "--adapter-path", str(out / "adapters"), "--save-every", str(iters + 1),
            "--seed", str(settings.seed), "-c", str(config)]
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "120"}
    tail: list[str] = []
    trains: list[tuple[float, dict[str, Any]]] = []
    valids: list[dict[str, Any]] = []
    began = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=out)
    watcher = PeakRss(lambda: proc.pid)
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter()
        found = _TAP_LINE.search(line)
        if found:
            info = json.loads(found.group(2))
            if found.group(1) == "train":
                trains.append((now, info))
            else:
                valids.append(info)
        elif line.strip():
            tail = [*tail[-40:], line.rstrip()]
    code = proc.wait()
    result = RunResult(wall_s=time.perf_counter() - began, peak_rss_bytes=watcher.stop())
    if code != 0:
        raise SystemExit(f"mlx_lm lora failed ({code}):\n" + "\n".join(tail))
    last_tokens = 0
    for arrived, info in trains:
        step = int(info["iteration"])
        seconds = min(settings.window, iters) / float(info["iterations_per_second"])
        tokens = int(info["trained_tokens"]) - last_tokens
        last_tokens = int(info["trained_tokens"])
        result.windows.append(window_of(step, seconds, tokens, arrived))
        result.peak_mlx_bytes = max(result.peak_mlx_bytes,
                                    round(float(info["peak_memory"]) * 1e9))
    if trains:
        result.final_loss = float(trains[-1][1]["train_loss"])
    if valids:
        result.first_val_loss = float(valids[0]["val_loss"])
    return result


# -- running and reporting ------------------------------------------------------------
def alternate(ours: Side, theirs: Side, settings: Settings,
              timing: Timing) -> tuple[list[RunResult], list[RunResult]]:
    """A short untimed run of each side, then `timing.runs` rounds, ours first in even
    rounds and theirs first in odd ones; a run disturbed by other processes is run again
    (at most `retries` times in all)."""
    results: dict[str, list[RunResult]] = {ours.name: [], theirs.name: []}
    retries = timing.retries

    def once(side: Side, iters: int, timed: bool) -> None:
        nonlocal retries
        while True:
            wait_quiet(timing)
            busy, own = cpu_busy_s(), own_cpu_s()
            result = side.run(iters)
            after = cpu_busy_s()
            others = 0.0
            if busy is not None and after is not None:
                others = max(0.0, (after - busy) - (own_cpu_s() - own)) / result.wall_s
            line = (f"    {side.name:>13}: {result.wall_s:7.2f} s, others busy {others:4.0%} "
                    "of a core")
            if not timed:
                print(line + " (warm-up)", flush=True)
                return
            if others > timing.max_others and retries > 0:
                retries -= 1
                print(line + ": discarded, run again", flush=True)
                continue
            figures = rates(result, settings)
            print(f"{line}; {figures['it_s']:.3f} it/s, {figures['tok_s']:.1f} tok/s, "
                  f"wall {figures['wall_it_s']:.3f} it/s, mlx peak "
                  f"{result.peak_mlx_bytes / 1e6:.1f} MB, loss {result.final_loss:.3f}",
                  flush=True)
            results[side.name].append(result)
            return

    if timing.warmup_iters > 0:
        for side in (ours, theirs):
            once(side, timing.warmup_iters, False)
    for round_no in range(timing.runs):
        for side in ((ours, theirs) if round_no % 2 == 0 else (theirs, ours)):
            once(side, settings.iters, True)
    return results[ours.name], results[theirs.name]


def report(label: str, settings: Settings, ours: list[RunResult],
           theirs: list[RunResult]) -> list[str]:
    """Print both sides' figures, the ratios and the verdicts; the summary lines."""
    o = [rates(r, settings) for r in ours]
    t = [rates(r, settings) for r in theirs]

    def med(values: list[dict[str, float]], key: str) -> float:
        return statistics.median(v[key] for v in values)

    rows = [("it/s (median window)", "it_s", 3), ("tok/s (median window)", "tok_s", 1),
            ("it/s (aggregate)", "agg_it_s", 3), ("tok/s (aggregate)", "agg_tok_s", 1),
            ("it/s (wall clock)", "wall_it_s", 3),
            ("outside trainer, ms/step", "outside_ms", 2)]
    print(f"  {'':22} {'ours':>12} {'mlx_lm.lora':>12} {'ratio':>7}   per round")
    for name, key, digits in rows:
        a, b = med(o, key), med(t, key)
        per_round = ", ".join(f"{x[key] / y[key]:.3f}" for x, y in zip(o, t, strict=True))
        print(f"  {name:22} {a:12.{digits}f} {b:12.{digits}f} {a / b:7.3f}   {per_round}")
    extra = [
        ("mlx peak memory, MB", [r.peak_mlx_bytes / 1e6 for r in ours],
         [r.peak_mlx_bytes / 1e6 for r in theirs], 1),
        ("process peak RSS, MB", [r.peak_rss_bytes / 1e6 for r in ours],
         [r.peak_rss_bytes / 1e6 for r in theirs], 1),
        ("whole run, s", [r.wall_s for r in ours], [r.wall_s for r in theirs], 2),
        ("training time, s", [x["train_s"] for x in o], [x["train_s"] for x in t], 2),
    ]
    for name, a_values, b_values, digits in extra:
        a, b = statistics.median(a_values), statistics.median(b_values)
        per_round = ", ".join(f"{x / y:.3f}" for x, y in zip(a_values, b_values, strict=True))
        print(f"  {name:22} {a:12.{digits}f} {b:12.{digits}f} {a / b:7.3f}   {per_round}")
    print(f"  loss: first validation {ours[-1].first_val_loss:.3f} / "
          f"{theirs[-1].first_val_loss:.3f}, last train report "
          f"{', '.join(f'{r.final_loss:.3f}' for r in ours)} / "
          f"{', '.join(f'{r.final_loss:.3f}' for r in theirs)}")
    it_ratio = med(o, "it_s") / med(t, "it_s")
    tok_ratio = med(o, "tok_s") / med(t, "tok_s")
    peak_ratio = (statistics.median(r.peak_mlx_bytes for r in ours)
                  / statistics.median(r.peak_mlx_bytes for r in theirs))
    wall_ratio = (statistics.median(r.wall_s for r in ours)
                  / statistics.median(r.wall_s for r in theirs))
    wall_rate_ratio = med(o, "wall_it_s") / med(t, "wall_it_s")
    verdicts = [
        verdict(f"{label} it/s ratio (ours/mlx_lm.lora)", it_ratio, SPEED_TARGET, True),
        verdict(f"{label} tok/s ratio (ours/mlx_lm.lora)", tok_ratio, SPEED_TARGET, True),
        verdict(f"{label} mlx peak memory ratio", peak_ratio, MEMORY_TARGET, False),
    ]
    for line in verdicts:
        print(line)
    print(f"  (informational: wall-clock it/s ratio {wall_rate_ratio:.3f}, whole-run time "
          f"ratio {wall_ratio:.3f})")
    return [*verdicts, f"{label} wall-clock it/s ratio {wall_rate_ratio:.3f}, whole-run "
            f"time {statistics.median(r.wall_s for r in ours):.1f} / "
            f"{statistics.median(r.wall_s for r in theirs):.1f} s = {wall_ratio:.3f}"]


def compare(label: str, base: Path, data: Path, work: Path, settings: Settings,
            timing: Timing) -> list[str]:
    settings.check()
    store = work / "runs.sqlite3"
    theirs_out = work / f"theirs-{label}"

    def ours_run(iters: int) -> RunResult:
        return run_ours(base, data, settings, store, iters)

    def theirs_run(iters: int) -> RunResult:
        shutil.rmtree(theirs_out, ignore_errors=True)
        return run_theirs(base, data, settings, theirs_out, iters)

    print(f"{label}: {base.name}, LoRA rank {settings.rank} on {settings.num_layers} layers, "
          f"batch {settings.batch_size}, max length {settings.max_seq_length}, "
          f"{settings.iters} iterations, lr {settings.learning_rate:g}, windows of "
          f"{settings.window} steps after the first {settings.skip}", flush=True)
    ours, theirs = alternate(Side("ours", ours_run), Side("mlx_lm.lora", theirs_run),
                             settings, timing)
    return report(label, settings, ours, theirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=(*MODELS, "both"), default="both")
    parser.add_argument("--runs", type=int, default=2, help="timed rounds")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--num-layers", type=int, default=4,
                        help="layers trained (at most the model's)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--iters", type=int, default=100, help="iterations, tiny model")
    parser.add_argument("--window", type=int, default=5,
                        help="mlx_lm.lora's steps per report, tiny model")
    parser.add_argument("--skip", type=int, default=10,
                        help="steps left out of the rates at the start, tiny model")
    parser.add_argument("--default-iters", type=int, default=4)
    parser.add_argument("--default-batch-size", type=int, default=1,
                        help="the default model's batch size (a step of batch 1 takes "
                             "about 9 s on a 2-core CPU)")
    parser.add_argument("--default-window", type=int, default=1)
    parser.add_argument("--default-skip", type=int, default=1)
    parser.add_argument("--default-val-batches", type=int, default=1)
    parser.add_argument("--warmup-iters", type=int, default=None,
                        help="one untimed run of each side first, this long (0: none; "
                             "default: 10 for the tiny model, 0 for the default model)")
    parser.add_argument("--max-others", type=float, default=1.0,
                        help="run again a run during which other processes kept more than "
                             "this share of one core busy (MLX's CPU backend trains on one "
                             "thread, so on 2 cores one other busy core leaves it its own; "
                             "a large value: never)")
    parser.add_argument("--retries", type=int, default=1,
                        help="such repeated runs at most, per comparison")
    parser.add_argument("--max-wait", type=float, default=5.0,
                        help="seconds to wait at most for a quiet machine before each run")
    args = parser.parse_args()
    chosen = MODELS if args.model == "both" else (args.model,)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # tests.support

    lines: list[str] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="macllm-finetune-bench-") as scratch:
        work = Path(scratch)
        data = work / "data"
        write_data(data)
        default_folder = None
        if "default" in chosen:  # the MLX copy lives in the real profile: made once
            from macllm_app.core.default_model import default_model_path
            from macllm_app.core.library.mlx_copies import ensure_mlx_copy

            default_folder = ensure_mlx_copy(default_model_path())
        os.environ["MACLLM_HOME"] = str(work / "home")  # the jobs inherit it
        base_settings = Settings(iters=args.iters, batch_size=args.batch_size,
                                 num_layers=args.num_layers, rank=args.rank,
                                 max_seq_length=args.max_seq_length, window=args.window,
                                 skip=args.skip)
        for label in chosen:
            if label == "tiny":
                from tests.support.mlx_tiny import make_tiny_mlx_model

                base = make_tiny_mlx_model(work / "tiny", seed=3)
                settings = base_settings
                warmup = 10 if args.warmup_iters is None else args.warmup_iters
            else:
                assert default_folder is not None
                base = default_folder
                settings = replace(base_settings, iters=args.default_iters,
                                   batch_size=args.default_batch_size,
                                   window=args.default_window, skip=args.default_skip,
                                   val_batches=args.default_val_batches)
                warmup = 0 if args.warmup_iters is None else args.warmup_iters
            settings = replace(settings, num_layers=min(settings.num_layers,
                                                        model_layers(base)))
            timing = Timing(args.runs, warmup, args.max_others, args.retries, args.max_wait)
            lines += compare(label, base, data, work, settings, timing)
    print(f"summary ({args.runs} rounds, medians, ours / mlx_lm.lora; "
          f"{time.perf_counter() - began:.0f} s in all):")
    for line in lines:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
