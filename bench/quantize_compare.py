"""Our quantization paths vs llama.cpp's and mlx-lm's own tools: same inputs, same threads.

Four comparisons, each side timed from the outside as a whole (ours through its job,
child-process start included: that is the app's real path; theirs as a subprocess):

- quantize: an F16 copy of the default model to Q4_K_M and to Q8_0, our
  `plan_quantize` + quantize job vs `llama-quantize`. Target: time ratio <= 1.05.
  The two outputs are compared tensor by tensor. With `--large`, the same on a
  random-weight 0.6B llama (F16, 1.2 GB): on the default model quantizing takes about a
  second, and a job's fixed start (a child process importing llama-cpp-python, about
  0.25 s) is a large share of it.
- imatrix: the shipped calibration text, 512-token chunks, our imatrix job vs
  `llama-imatrix -c 512 --no-ppl` (ours computes no perplexity either). Targets: every
  tensor's values within 1 % (||ours - theirs|| / ||theirs||), time ratio <= 1.2.
- perplexity: the shipped evaluation text on the F16 copy, our evaluate job (its
  decode-speed and memory measurement off: perplexity alone, as the tool) vs
  `llama-perplexity -c 512`. Targets: PPL within 0.1 %, time ratio <= 1.1.
- mlx: an MLX F16 folder of the default model (made once by our converter) to 4 bits,
  groups of 64, our MLX quantize job vs `python -m mlx_lm convert -q`. Target: time
  ratio <= 1.05. The two outputs' arrays are compared.

The F16 copy is made once per run by `llama-quantize --allow-requantize ... F16`, as
the tests make theirs. llama.cpp's tools are built once into `~/.cache/macllm-bench`
(`llama_tools.py`). Each comparison runs one untimed run of each side, then `--runs`
rounds of one run each, in an order that alternates from round to round; outputs are
deleted before every run. A run during which other processes kept more than
`--max-others` of a core busy (from /proc/stat, less this process's and its
children's CPU time) is discarded and run again, and each run first waits (up to
`--max-wait` s) for an idle second: on a shared 2-core machine another
process's threads slow llama.cpp's several times over. MACLLM_HOME points at a
temporary folder, so the jobs add their results to a throwaway library. Top-level
imports are kept light: every job's child process (spawn) imports this script again.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_busy_s, own_cpu_s, verdict
from llama_tools import build_llama_tool

COMPARISONS = ("quantize", "imatrix", "perplexity", "mlx")
QUANT_TYPES = ("Q4_K_M", "Q8_0")
N_CTX = 512
TIME_TARGETS = {"quantize": 1.05, "imatrix": 1.2, "perplexity": 1.1, "mlx": 1.05}
IMATRIX_TARGET_REL = 0.01
PPL_TARGET_REL = 0.001
_FINAL_PPL = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")
_CHUNKS = re.compile(r"(?:computing|calculating perplexity) over (\d+) chunks")


@dataclass
class Side:
    """A side of a comparison: `run()` does the work once, `clean()` removes its output."""

    name: str
    run: Callable[[], Any]
    clean: Callable[[], None]


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remover(path: Path) -> Callable[[], None]:
    return lambda: remove(path)


def tool(args: list[str]) -> str:
    """Run one of llama.cpp's tools; its stdout and stderr together."""
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-2000:]
        raise SystemExit(f"{Path(args[0]).name} failed ({done.returncode}):\n{tail}")
    return done.stdout + done.stderr


@dataclass(frozen=True)
class Timing:
    runs: int
    warmup: int
    max_others: float  # the share of one core other processes may use during a run
    retries: int       # runs repeated at most, per comparison, for that load
    max_wait_s: float  # how long to wait for a quiet machine before each run
    job_start_s: float = 0.0  # a job that only imports llama-cpp-python (informational)


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


def alternate(ours: Side, theirs: Side, timing: Timing) -> tuple[
        list[float], list[float], list[Any], list[Any]]:
    """Warm-up runs, then `timing.runs` rounds, ours first in even rounds and theirs
    first in odd ones. A run during which other processes kept more than
    `max_others` of a core busy is run again (at most `retries` times in all): on a
    2-core machine another process's threads slow llama.cpp's by several times.
    Returns each side's seconds and results; the last outputs are kept."""
    seconds: dict[str, list[float]] = {ours.name: [], theirs.name: []}
    results: dict[str, list[Any]] = {ours.name: [], theirs.name: []}
    retries = timing.retries

    def once(side: Side, timed: bool) -> None:
        nonlocal retries
        while True:
            side.clean()
            wait_quiet(timing)
            busy, own = cpu_busy_s(), own_cpu_s()
            began = time.perf_counter()
            result = side.run()
            elapsed = time.perf_counter() - began
            after = cpu_busy_s()
            others = 0.0
            if busy is not None and after is not None:
                others = max(0.0, (after - busy) - (own_cpu_s() - own)) / elapsed
            note = "" if timed else " (warm-up)"
            if timed and others > timing.max_others and retries > 0:
                retries -= 1
                print(f"    {side.name:>16}: {elapsed:7.2f} s, others busy {others:4.0%} of a "
                      "core: discarded, run again", flush=True)
                continue
            print(f"    {side.name:>16}: {elapsed:7.2f} s, others busy {others:4.0%} of a "
                  f"core{note}", flush=True)
            if timed:
                seconds[side.name].append(elapsed)
                results[side.name].append(result)
            return

    for _ in range(timing.warmup):
        once(ours, False)
        once(theirs, False)
    for round_no in range(timing.runs):
        order = (ours, theirs) if round_no % 2 == 0 else (theirs, ours)
        for side in order:
            once(side, True)
    return (seconds[ours.name], seconds[theirs.name], results[ours.name],
            results[theirs.name])


def report_times(name: str, tool_name: str, ours: list[float], theirs: list[float],
                 target: float, fixed_s: float = 0.0) -> float:
    """Print both sides' min/median/max, the ratios, and the verdict; the ratio of medians.
    `fixed_s`: a job's fixed start, shown taken off ours (informational)."""
    for label, values in (("ours", ours), (tool_name, theirs)):
        print(f"  {label:>16}: min {min(values):7.2f} s, median "
              f"{statistics.median(values):7.2f} s, max {max(values):7.2f} s")
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"  ratio of the medians {ratio:.3f}, of the mins {min(ours) / min(theirs):.3f}, "
          f"per round {', '.join(f'{o / t:.3f}' for o, t in zip(ours, theirs, strict=True))}")
    if fixed_s:
        print(f"  (ours less a job's fixed start, {fixed_s:.2f} s: ratio of the medians "
              f"{(statistics.median(ours) - fixed_s) / statistics.median(theirs):.3f})")
    print(verdict(f"{name} time ratio (ours/{tool_name}, medians)", ratio, target,
                  higher_is_better=False))
    return ratio


# -- the comparisons --------------------------------------------------------------------
def compare_gguf(ours: Path, theirs: Path) -> str:
    """How two GGUF files differ: byte for byte, else tensor by tensor."""
    import filecmp

    import numpy as np
    from gguf import GGUFReader

    if filecmp.cmp(ours, theirs, shallow=False):
        return "byte-identical"
    a, b = GGUFReader(str(ours)), GGUFReader(str(theirs))
    mine = {t.name: t for t in a.tensors}
    other = {t.name: t for t in b.tensors}
    differ = [name for name, t in mine.items() if name not in other
              or t.tensor_type != other[name].tensor_type
              or not np.array_equal(np.asarray(t.data), np.asarray(other[name].data))]
    return (f"not byte-identical; tensors {len(mine)} / {len(other)}, "
            f"differing in type or data: {len(differ)} {differ[:5]}")


def run_quantize(work: Path, f16: Path, quantize_bin: Path, threads: int,
                 timing: Timing) -> list[str]:
    from macllm_app.core.jobs import Job
    from macllm_app.core.quantize.llamacpp import (
        CANCEL_GRACE_S,
        QUANTIZE_TARGET,
        QUANTIZE_TITLE,
        QuantizeOptions,
        plan_quantize,
    )

    lines = []
    for kind in QUANT_TYPES:
        mine, theirs = work / f"ours-{kind}.gguf", work / f"theirs-{kind}.gguf"

        def ours_run(dest: Path = mine, kind: str = kind) -> Any:
            plan = plan_quantize(f16, dest, kind, QuantizeOptions(threads=threads))
            return Job(QUANTIZE_TARGET, (plan,), title=QUANTIZE_TITLE,
                       cancel_grace_s=CANCEL_GRACE_S).run()

        def theirs_run(dest: Path = theirs, kind: str = kind) -> Any:
            return tool([str(quantize_bin), str(f16), str(dest), kind, str(threads)])

        print(f"quantize F16 -> {kind}, {threads} threads", flush=True)
        o, t, _, _ = alternate(Side("ours", ours_run, _remover(mine)),
                               Side("llama-quantize", theirs_run, _remover(theirs)),
                               timing)
        ratio = report_times(f"quantize {kind}", "llama-quantize", o, t,
                             TIME_TARGETS["quantize"], timing.job_start_s)
        same = compare_gguf(mine, theirs)
        print(f"  outputs: {same} ({mine.stat().st_size:,} / {theirs.stat().st_size:,} bytes)")
        lines.append(f"quantize {kind}: {statistics.median(o):.2f} / "
                     f"{statistics.median(t):.2f} s = {ratio:.3f}; outputs {same}")
        remove(mine)
        remove(theirs)
    return lines


def compare_imatrix(ours: Path, theirs: Path) -> tuple[float, float, str]:
    """(max over tensors of ||a-b||/||b||, max elementwise relative difference where
    |b| > 1e-3 of the tensor's largest value, a summary line)."""
    import numpy as np

    from macllm_app.core.quantize.imatrix import read_imatrix

    a, b = read_imatrix(ours), read_imatrix(theirs)
    common_names = sorted(set(a) & set(b))
    worst_norm, worst_elem, worst_name = 0.0, 0.0, ""
    for name in common_names:
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        if x.shape != y.shape:
            worst_norm, worst_name = float("inf"), f"{name} (shapes {x.shape} / {y.shape})"
            continue
        norm = float(np.linalg.norm(x - y)) / max(float(np.linalg.norm(y)), 1e-30)
        big = np.abs(y) > 1e-3 * np.abs(y).max()
        elem = float((np.abs(x - y)[big] / np.abs(y)[big]).max()) if big.any() else 0.0
        if norm > worst_norm:
            worst_norm, worst_name = norm, name
        worst_elem = max(worst_elem, elem)
    summary = (f"tensors {len(a)} / {len(b)}, in both {len(common_names)}; "
               f"worst tensor {worst_name or '-'}")
    if set(a) != set(b):
        worst_norm = float("inf")
        summary += (f"; only ours: {sorted(set(a) - set(b))[:5]}, "
                    f"only theirs: {sorted(set(b) - set(a))[:5]}")
    return worst_norm, worst_elem, summary


def run_imatrix(work: Path, f16: Path, threads: int, timing: Timing) -> list[str]:
    from macllm_app.core.jobs import Job
    from macllm_app.core.quantize.imatrix_compute import IMATRIX_TARGET, IMATRIX_TITLE
    from macllm_app.core.resources import CALIBRATION_TEXT, read_text

    binary = build_llama_tool("llama-imatrix")
    text = read_text(CALIBRATION_TEXT)
    text_file = work / "calibration.txt"
    text_file.write_text(text, encoding="utf-8")
    mine, theirs = work / "ours-imatrix.gguf", work / "theirs-imatrix.gguf"

    def ours_run() -> int:
        result = Job(IMATRIX_TARGET, (str(f16), text, str(mine), None, threads),
                     title=IMATRIX_TITLE).run()
        return int(result["chunks"])

    def theirs_run() -> int:
        out = tool([str(binary), "-m", str(f16), "-f", str(text_file), "-o", str(theirs),
                    "-c", str(N_CTX), "-t", str(threads), "--no-ppl"])
        found = _CHUNKS.search(out)
        return int(found.group(1)) if found else -1

    print(f"imatrix over the calibration text, F16 copy, {threads} threads", flush=True)
    o, t, o_chunks, t_chunks = alternate(Side("ours", ours_run, lambda: remove(mine)),
                                         Side("llama-imatrix", theirs_run,
                                              lambda: remove(theirs)), timing)
    ratio = report_times("imatrix", "llama-imatrix", o, t, TIME_TARGETS["imatrix"],
                         timing.job_start_s)
    norm, elem, summary = compare_imatrix(mine, theirs)
    print(f"  chunks of {N_CTX}: ours {o_chunks[-1]}, llama-imatrix {t_chunks[-1]}; {summary}")
    print(f"  max elementwise relative difference (|theirs| > 1e-3 of the tensor's max): "
          f"{elem:.2e}")
    print(verdict("imatrix values, max over tensors of ||ours-theirs||/||theirs||, %",
                  100 * norm, 100 * IMATRIX_TARGET_REL, higher_is_better=False))
    remove(mine)
    remove(theirs)
    return [f"imatrix: {statistics.median(o):.2f} / {statistics.median(t):.2f} s = "
            f"{ratio:.3f}; chunks {o_chunks[-1]} / {t_chunks[-1]}; worst tensor rel "
            f"{norm:.2e}, worst element rel {elem:.2e}"]


def run_perplexity(work: Path, f16: Path, threads: int, timing: Timing) -> list[str]:
    from macllm_app.core.jobs import Job
    from macllm_app.core.quantize.quality import EVALUATE_TARGET, EVALUATE_TITLE
    from macllm_app.core.resources import EVALUATION_TEXT, read_text

    binary = build_llama_tool("llama-perplexity")
    text = read_text(EVALUATION_TEXT)
    text_file = work / "evaluation.txt"
    text_file.write_text(text, encoding="utf-8")

    def ours_run() -> tuple[float, int]:
        result = Job(EVALUATE_TARGET, (str(f16), None, text, False, threads),
                     {"speed": False}, title=EVALUATE_TITLE).run()
        return float(result["ppl"]), int(result["chunks"])

    def theirs_run() -> tuple[float, int]:
        out = tool([str(binary), "-m", str(f16), "-f", str(text_file), "-c", str(N_CTX),
                    "-t", str(threads)])
        ppl, chunks = _FINAL_PPL.search(out), _CHUNKS.search(out)
        if ppl is None or chunks is None:
            raise SystemExit(f"llama-perplexity printed no estimate:\n{out[-2000:]}")
        return float(ppl.group(1)), int(chunks.group(1))

    print(f"perplexity over the evaluation text, F16 copy, {threads} threads", flush=True)
    o, t, o_res, t_res = alternate(Side("ours", ours_run, lambda: None),
                                   Side("llama-perplexity", theirs_run, lambda: None),
                                   timing)
    ratio = report_times("perplexity", "llama-perplexity", o, t, TIME_TARGETS["perplexity"],
                         timing.job_start_s)
    (o_ppl, o_chunks), (t_ppl, t_chunks) = o_res[-1], t_res[-1]
    steady = len({r[0] for r in o_res}) == 1 and len({r[0] for r in t_res}) == 1
    rel = abs(o_ppl - t_ppl) / t_ppl
    print(f"  PPL ours {o_ppl:.4f}, llama-perplexity {t_ppl:.4f} (chunks {o_chunks} / "
          f"{t_chunks}; the same in every run: {'yes' if steady else 'no'})")
    print(verdict("PPL relative difference, %", 100 * rel, 100 * PPL_TARGET_REL,
                  higher_is_better=False))
    return [f"perplexity: {statistics.median(o):.2f} / {statistics.median(t):.2f} s = "
            f"{ratio:.3f}; PPL {o_ppl:.4f} / {t_ppl:.4f} (rel {rel:.2e}), chunks "
            f"{o_chunks} / {t_chunks}"]


def compare_mlx(ours: Path, theirs: Path) -> str:
    """How two MLX folders' arrays differ."""
    import numpy as np
    from safetensors.numpy import load_file

    def arrays(folder: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in sorted(folder.glob("*.safetensors")):
            out.update(load_file(str(part)))
        return out

    try:
        a, b = arrays(ours), arrays(theirs)
    except (TypeError, ValueError) as exc:  # a dtype numpy lacks (bfloat16)
        return f"not compared ({exc})"
    both = sorted(set(a) & set(b))
    equal = sum(1 for name in both if a[name].dtype == b[name].dtype
                and np.array_equal(a[name], b[name]))
    diff = max((float(np.abs(a[n].astype(np.float64) - b[n].astype(np.float64)).max())
                for n in both if a[n].shape == b[n].shape and a[n].dtype.kind == "f"),
               default=0.0)
    return (f"arrays {len(a)} / {len(b)}, identical {equal} of {len(both)} in both, "
            f"largest float difference {diff:.3g}")


def run_mlx(work: Path, f16: Path, threads: int, timing: Timing) -> list[str]:
    del threads  # MLX picks its own
    from macllm_app.core.convert.gguf_to_mlx import convert_gguf_to_mlx
    from macllm_app.core.jobs import Job
    from macllm_app.core.quantize.mlx import (
        MLX_QUANTIZE_TARGET,
        MLX_QUANTIZE_TITLE,
        plan_mlx_quantize,
    )

    source = work / "f16-mlx"
    if not source.exists():
        began = time.perf_counter()
        convert_gguf_to_mlx(f16, source)
        print(f"made the MLX F16 folder in {time.perf_counter() - began:.1f} s", flush=True)
    mine, theirs = work / "ours-mlx-4bit", work / "theirs-mlx-4bit"

    def ours_run() -> Any:
        plan = plan_mlx_quantize(source, mine, bits=4, group_size=64)
        return Job(MLX_QUANTIZE_TARGET, (plan,), title=MLX_QUANTIZE_TITLE,
                   cancel_grace_s=2.0).run()

    def theirs_run() -> Any:
        return tool([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", str(source),
                     "--mlx-path", str(theirs), "-q", "--q-bits", "4", "--q-group-size", "64"])

    print("MLX quantize F16 -> 4-bit, groups of 64", flush=True)
    o, t, _, _ = alternate(Side("ours", ours_run, lambda: remove(mine)),
                           Side("mlx_lm convert", theirs_run, lambda: remove(theirs)),
                           timing)
    ratio = report_times("MLX quantize", "mlx_lm convert", o, t, TIME_TARGETS["mlx"])
    same = compare_mlx(mine, theirs)
    print(f"  outputs: {same}")
    remove(mine)
    remove(theirs)
    return [f"mlx 4-bit g64: {statistics.median(o):.2f} / {statistics.median(t):.2f} s = "
            f"{ratio:.3f}; {same}"]


def make_large_f16(work: Path) -> Path:
    """A random-weight llama of about 0.6B parameters as an F16 GGUF (made once): big
    enough that quantizing it takes seconds, so a job's fixed start stops mattering."""
    dest = work / "large-f16.gguf"
    if dest.exists():
        return dest
    import json

    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    from macllm_app.core.convert.mlx_to_gguf import export_mlx_to_gguf

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.mlx_tiny import write_byte_tokenizer

    folder = work / "large-mlx"
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, object] = {
        "model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 12,
        "intermediate_size": 5632, "num_attention_heads": 16, "num_key_value_heads": 16,
        "rms_norm_eps": 1e-5, "vocab_size": write_byte_tokenizer(folder),
        "max_position_embeddings": 2048, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "torch_dtype": "float16"}
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    model.set_dtype(mx.float16)
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(config))
    began = time.perf_counter()
    export_mlx_to_gguf(folder, dest)
    shutil.rmtree(folder)
    print(f"made a random-weight F16 GGUF of {dest.stat().st_size / 1e9:.2f} GB in "
          f"{time.perf_counter() - began:.1f} s", flush=True)
    return dest


def job_start_seconds(target: str, samples: int = 3) -> float:
    """The median time of a job running `target` with no arguments."""
    from macllm_app.core.jobs import Job

    times = []
    for _ in range(samples):
        began = time.perf_counter()
        Job(target).run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per side first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-others", type=float, default=0.15,
                        help="run again a run during which other processes kept more than "
                             "this share of one core busy (1.0: never)")
    parser.add_argument("--retries", type=int, default=6,
                        help="such repeated runs at most, per comparison")
    parser.add_argument("--max-wait", type=float, default=120.0,
                        help="seconds to wait at most for a quiet machine before each run")
    parser.add_argument("--only", default=",".join(COMPARISONS),
                        help=f"comma-separated, of {', '.join(COMPARISONS)}")
    parser.add_argument("--large", action="store_true",
                        help="quantize also a random-weight 0.6B llama (F16, 1.2 GB), where "
                             "the work outweighs a job's fixed start")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the F16 copy and outputs (default: a temporary one)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(COMPARISONS))
    if unknown or not chosen:
        parser.error(f"--only takes {', '.join(COMPARISONS)}, not {', '.join(unknown)}")

    with tempfile.TemporaryDirectory(prefix="macllm-quantize-bench-") as scratch:
        os.environ["MACLLM_HOME"] = str(Path(scratch) / "home")  # jobs inherit it
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        from macllm_app.core.default_model import default_model_path

        quantize_bin = build_llama_tool("llama-quantize")
        model = default_model_path()
        f16 = work / "default-f16.gguf"
        if not f16.exists():
            began = time.perf_counter()
            tool([str(quantize_bin), "--allow-requantize", str(model), str(f16), "F16",
                  str(args.threads)])
            print(f"made the F16 copy of {model.name} in {time.perf_counter() - began:.1f} s",
                  flush=True)
        empty = job_start_seconds("os:getpid")
        fixed = job_start_seconds("llama_cpp.llama_cpp:llama_max_devices")
        print(f"a job that does nothing takes {empty:.2f} s; one that imports llama-cpp-python "
              f"{fixed:.2f} s", flush=True)
        lines: list[str] = []
        timing = Timing(args.runs, args.warmup, args.max_others, args.retries,
                        args.max_wait, fixed)
        for name in chosen:
            if name == "quantize":
                lines += run_quantize(work, f16, quantize_bin, args.threads, timing)
                if args.large:
                    large = make_large_f16(work)
                    lines += [f"large model, {line}" for line in
                              run_quantize(work, large, quantize_bin, args.threads, timing)]
            elif name == "imatrix":
                lines += run_imatrix(work, f16, args.threads, timing)
            elif name == "perplexity":
                lines += run_perplexity(work, f16, args.threads, timing)
            else:
                lines += run_mlx(work, f16, args.threads, timing)
        print(f"summary ({args.threads} threads, {args.runs} timed runs a side, medians, "
              "ours / theirs):")
        for line in lines:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
