"""`macllm serve` vs llama.cpp's own `llama-server`: same model, threads, context and batch.

Starts both servers as subprocesses (llama-server built once from the llama-cpp-python
source distribution we depend on, as for llama-bench; ours with a throw-away
MACLLM_HOME whose engine settings carry the same threads, batch and GPU layers) and
drives both with the same streaming OpenAI chat requests through one aiohttp client:
temperature 0, `ignore_eos` and a fixed `max_tokens`, so both generate exactly as
many tokens (checked against each reply's `usage`).

- one client: decode tok/s = (completion tokens - 1) / (last token's arrival - the
  first's), and time to first token, from sending the request to the first content
  chunk. The prompt is the same every time, as a user repeating a question would send
  it; both servers keep it cached, so the TTFT is mostly each server's per-request cost.
  Targets: decode >= 0.95, TTFT <= 1.10 (ours / llama-server).
- 8 concurrent clients (both servers with 8 slots): all generated tokens / wall time
  from the first request sent to the last stream ended. Target >= 0.90.

Both servers run with `--parallel` slots (8 by default) and the same context per slot
(llama-server gets `-c parallel * ctx`). Each round measures both servers, in an
order that alternates; a round of a server is `--single-runs` single-client requests
(their median) and one batch of concurrent clients. Before every timed request the
script waits for a quiet machine, and a request during which other processes kept
more than `--max-others` of a core busy is run again (at most `--retries` times): on a
2-core machine other work changes the numbers by more than the margins measured. The
verdicts are medians of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import FILLER, cpu_busy_s, own_cpu_s, verdict
from llama_tools import build_llama_tool

SYSTEM = "You are a helpful assistant."
# a streamed chunk whose delta carries text (both servers' JSON spellings)
CONTENT = re.compile(rb'"content"\s*:\s*"(?!")')
NULL_USAGE = re.compile(rb'"usage"\s*:\s*null')


# -- the client -----------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamResult:
    ttft_s: float
    decode_tps: float
    completion_tokens: int
    prompt_tokens: int
    chunks: int
    elapsed_s: float
    server_tps: float | None  # the server's own decode timer, where it sends one


async def stream_chat(session: aiohttp.ClientSession, url: str,
                      body: dict[str, Any]) -> StreamResult:
    """One streamed chat completion, timed at the client."""
    began = time.perf_counter()
    first = last = 0.0
    chunks = 0
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}: {(await resp.text())[:300]}")
        async for line in resp.content:
            if not line.startswith(b"data:"):
                continue
            now = time.perf_counter()
            if CONTENT.search(line):
                if chunks == 0:
                    first = now
                chunks += 1
                last = now
            if b'"usage"' in line and not NULL_USAGE.search(line):
                data = json.loads(line[5:])
                usage = data.get("usage") or usage
                timings = data.get("timings") or timings
    ended = time.perf_counter()
    if usage is None:
        raise RuntimeError(f"{url}: the stream sent no usage")
    tokens = int(usage["completion_tokens"])
    span = last - first
    return StreamResult(
        ttft_s=first - began,
        decode_tps=(tokens - 1) / span if span > 0 else 0.0,
        completion_tokens=tokens,
        prompt_tokens=int(usage["prompt_tokens"]),
        chunks=chunks,
        elapsed_s=ended - began,
        server_tps=float(timings["predicted_per_second"]) if timings else None,
    )


def chat_body(model: str, question: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": question}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "max_tokens": max_tokens,
        "ignore_eos": True,
    }


def question(index: int, words: int) -> str:
    text = (FILLER * (words // 14 + 1)).split(" ")[:words]
    return f"Question {index}: retell this story in your own words. " + " ".join(text)


# -- the servers ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    model: str = "model"  # the request's `model` field
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    async def wait_ready(self, session: aiohttp.ClientSession, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"its log: {self.log_path}\n{self.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(f"{self.url}/health",
                                       timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /health within {timeout_s:.0f} s; "
                           f"its log: {self.log_path}\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_split_s(self) -> tuple[float, float]:
        """CPU seconds of the server process, and of every process below it (our engine
        host; llama-server has none)."""
        if self.proc is None:
            return 0.0, 0.0
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0, 0.0
        seconds = []
        for proc in procs:
            try:
                times = proc.cpu_times()
                seconds.append(times.user + times.system)
            except psutil.Error:
                seconds.append(0.0)
        return seconds[0], sum(seconds[1:])

    def cpu_s(self) -> float:
        """CPU seconds of the server and every process below it."""
        return sum(self.cpu_split_s())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # both stop cleanly on Ctrl+C
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def llama_server(binary: Path, model: str, args: argparse.Namespace, log: Path) -> Server:
    port = free_port()
    argv = [str(binary), "-m", model, "--host", "127.0.0.1", "--port", str(port),
            "-t", str(args.threads), "-tb", str(args.threads),
            "-c", str(args.parallel * args.ctx), "-np", str(args.parallel),
            "-b", str(args.batch), "-ub", str(args.batch), "-ngl", str(args.ngl)]
    return Server("llama-server", argv, port, log)


def our_server(model: str, args: argparse.Namespace, home: Path, log: Path) -> Server:
    """`macllm serve` with a profile of its own: the engine settings say threads, batch,
    context per slot and GPU layers; a model other than the bundled one is imported into
    that profile's library (linked in place) and served by its id."""
    env = dict(os.environ, MACLLM_HOME=str(home))
    engine = {"n_threads": args.threads, "n_batch": args.batch, "n_ctx": args.ctx,
              "n_gpu_layers": -1 if args.ngl else 0}
    (home / "settings.json").write_text(json.dumps({"schema_version": 1, "engine": engine}))
    ref = "default"
    if args.model:
        found = subprocess.run(
            [sys.executable, "-c",
             "import sys; from pathlib import Path; "
             "from macllm_app.core.library.importer import import_model; "
             "print(import_model(Path(sys.argv[1])).id)", model],
            env=env, capture_output=True, text=True, check=True)
        ref = found.stdout.strip().splitlines()[-1]
    port = free_port()
    argv = [*args.macllm_cmd.split(), "serve", "--model", ref, "--host", "127.0.0.1",
            "--port", str(port), "--parallel", str(args.parallel), "--ctx", str(args.ctx)]
    return Server("macllm serve", argv, port, log, env=env, model=ref)


# -- machine load ---------------------------------------------------------------------------
class Load:
    """What other processes do to the machine while our two servers and this client run."""

    def __init__(self, servers: list[Server], max_others: float, max_wait_s: float) -> None:
        self.servers, self.max_others, self.max_wait_s = servers, max_others, max_wait_s

    def ours_s(self) -> float:
        return own_cpu_s(children=False) + sum(s.cpu_s() for s in self.servers)

    def mark(self) -> tuple[float | None, float, float]:
        return cpu_busy_s(), self.ours_s(), time.perf_counter()

    def others_since(self, mark: tuple[float | None, float, float]) -> float:
        """The share of one core others kept busy since `mark`."""
        busy, ours, began = mark
        now_busy = cpu_busy_s()
        elapsed = time.perf_counter() - began
        if busy is None or now_busy is None or elapsed <= 0:
            return 0.0
        return max(0.0, (now_busy - busy) - (self.ours_s() - ours)) / elapsed

    async def wait_quiet(self) -> None:
        """Wait (at most `max_wait_s`) until others have left the machine idle for a second."""
        deadline = time.monotonic() + self.max_wait_s
        while time.monotonic() < deadline:
            mark = self.mark()
            await asyncio.sleep(1.0)
            if self.others_since(mark) <= self.max_others:
                return
        print(f"    (the machine stayed busy for {self.max_wait_s:.0f} s; measuring anyway)",
              flush=True)


# -- the measurements -----------------------------------------------------------------------
@dataclass
class CpuTally:
    """CPU seconds of a server process and of its children, and the tokens generated."""

    server_s: float = 0.0
    children_s: float = 0.0
    tokens: int = 0

    def per_token(self) -> str:
        if not self.tokens:
            return "no tokens"
        server, children = (1e6 * s / self.tokens for s in (self.server_s, self.children_s))
        if self.children_s:
            return f"{server:.0f} us server process + {children:.0f} us engine host"
        return f"{server:.0f} us"


@dataclass
class Side:
    server: Server
    single: list[StreamResult] = field(default_factory=list)  # each round's median run
    concurrent_tps: list[float] = field(default_factory=list)
    concurrent_ttft: list[float] = field(default_factory=list)
    discarded: int = 0
    # CPU over the timed runs, one tally per kind of run ("single", "concurrent")
    cpu: dict[str, CpuTally] = field(default_factory=dict)


class Bench:
    def __init__(self, args: argparse.Namespace, session: aiohttp.ClientSession,
                 load: Load) -> None:
        self.args, self.session, self.load = args, session, load
        self.retries = args.retries
        # the one client asks the first concurrent client's question: eight prompts in
        # eight slots, every one of them cached after the warm-up on both servers
        self.questions = [question(i + 1, args.prompt_words) for i in range(args.clients)]
        self.single_question = self.questions[0]

    def check(self, side: Side, result: StreamResult, max_tokens: int) -> None:
        if result.completion_tokens != max_tokens:
            raise RuntimeError(f"{side.server.name} generated {result.completion_tokens} tokens, "
                               f"not {max_tokens} (ignore_eos not honoured?)")

    async def measured(self, side: Side, kind: str, run: Callable[[], Awaitable[Any]],
                       tokens: int) -> Any:
        """Run `run` on a quiet machine; again (within the retry budget) if others were busy.
        The kept run's CPU time and `tokens` count into the side's CPU per token."""
        while True:
            await self.load.wait_quiet()
            cpu_before = side.server.cpu_split_s()
            mark = self.load.mark()
            result = await run()
            others = self.load.others_since(mark)
            cpu_after = side.server.cpu_split_s()
            if others > self.load.max_others and self.retries > 0:
                self.retries -= 1
                side.discarded += 1
                print(f"    {side.server.name}: others busy {others:.0%} of a core: run again",
                      flush=True)
                continue
            tally = side.cpu.setdefault(kind, CpuTally())
            tally.server_s += cpu_after[0] - cpu_before[0]
            tally.children_s += cpu_after[1] - cpu_before[1]
            tally.tokens += tokens
            return result

    async def single(self, side: Side, timed: bool = True) -> StreamResult:
        body = chat_body(side.server.model, self.single_question, self.args.max_tokens)

        async def run() -> StreamResult:
            return await stream_chat(self.session, side.server.url, body)

        result: StreamResult = await (self.measured(side, "single", run, self.args.max_tokens)
                                      if timed else run())
        self.check(side, result, self.args.max_tokens)
        if self.args.verbose and timed:
            print(f"    {side.server.name:>12}, one client: decode {result.decode_tps:7.1f} tok/s, "
                  f"TTFT {result.ttft_s * 1000:.1f} ms", flush=True)
        return result

    async def concurrent(self, side: Side, timed: bool = True) -> tuple[float, float]:
        """(total tok/s, median TTFT) of `clients` streams started together."""
        bodies = [chat_body(side.server.model, q, self.args.concurrent_max_tokens)
                  for q in self.questions]

        async def run() -> tuple[float, list[StreamResult]]:
            began = time.perf_counter()
            results = await asyncio.gather(
                *(stream_chat(self.session, side.server.url, b) for b in bodies))
            return time.perf_counter() - began, list(results)

        tokens = self.args.concurrent_max_tokens * len(bodies)
        wall, results = await (self.measured(side, "concurrent", run, tokens) if timed else run())
        for r in results:
            self.check(side, r, self.args.concurrent_max_tokens)
        total = sum(r.completion_tokens for r in results)
        if self.args.verbose:
            ttfts = sorted(r.ttft_s * 1000 for r in results)
            ends = sorted(r.elapsed_s for r in results)
            tps = sorted(r.decode_tps for r in results)
            print(f"    {side.server.name:>12}, {len(results)} clients: {total / wall:7.1f} tok/s; "
                  f"TTFT {ttfts[0]:.1f} .. {ttfts[-1]:.1f} ms, ended {ends[0]:.2f} .. "
                  f"{ends[-1]:.2f} s, each client's decode {tps[0]:.1f} .. {tps[-1]:.1f} tok/s",
                  flush=True)
        return total / wall, statistics.median(r.ttft_s for r in results)

    async def warm_up(self, side: Side) -> None:
        """Load the model (ours loads on the first request), fill both prompt caches."""
        await self.single(side, timed=False)
        await self.concurrent(side, timed=False)

    async def round(self, side: Side) -> None:
        runs = [await self.single(side) for _ in range(self.args.single_runs)]
        runs.sort(key=lambda r: r.decode_tps)
        median_run = runs[len(runs) // 2]
        ttft = statistics.median(r.ttft_s for r in runs)
        side.single.append(StreamResult(
            ttft_s=ttft, decode_tps=median_run.decode_tps,
            completion_tokens=median_run.completion_tokens,
            prompt_tokens=median_run.prompt_tokens, chunks=median_run.chunks,
            elapsed_s=median_run.elapsed_s, server_tps=median_run.server_tps))
        tps, conc_ttft = await self.concurrent(side)
        side.concurrent_tps.append(tps)
        side.concurrent_ttft.append(conc_ttft)


def summary(name: str, ours: list[float], theirs: list[float], target: float,
            higher_is_better: bool, unit: str, scale: float = 1.0) -> None:
    ratios = sorted(o / t for o, t in zip(ours, theirs, strict=True))
    o_med, t_med = statistics.median(ours), statistics.median(theirs)
    print(f"  {name}: ours {o_med * scale:8.1f} {unit}, llama-server {t_med * scale:8.1f} {unit}; "
          f"ratio per round {ratios[0]:.3f} .. {ratios[-1]:.3f}, "
          f"ratio of the medians {o_med / t_med:.3f}")
    print(verdict(f"{name} ratio (ours/llama-server, median of rounds)",
                  statistics.median(ratios), target, higher_is_better=higher_is_better))


async def compare(args: argparse.Namespace, ours: Server, theirs: Server) -> int:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
    # a new connection per request: llama-server closes a streamed reply's connection
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for server in (theirs, ours):
            server.start()
        try:
            for server in (theirs, ours):
                await server.wait_ready(session, args.start_timeout)
            load = Load([ours, theirs], args.max_others, args.max_wait)
            bench = Bench(args, session, load)
            sides = {"ours": Side(ours), "theirs": Side(theirs)}
            for side in sides.values():
                await bench.warm_up(side)
            print(f"  both servers warm; {args.rounds} rounds", flush=True)
            for round_no in range(1, args.rounds + 1):
                # the order alternates, so neither side always runs first
                order = ("theirs", "ours") if round_no % 2 else ("ours", "theirs")
                for key in order:
                    await bench.round(sides[key])
                o, t = sides["ours"], sides["theirs"]
                print(f"  round {round_no:2d}: "
                      f"decode {o.single[-1].decode_tps:7.1f} / {t.single[-1].decode_tps:7.1f}"
                      f" = {o.single[-1].decode_tps / t.single[-1].decode_tps:.3f}   "
                      f"TTFT {o.single[-1].ttft_s * 1000:6.1f} / {t.single[-1].ttft_s * 1000:6.1f}"
                      f" ms = {o.single[-1].ttft_s / t.single[-1].ttft_s:.3f}   "
                      f"{args.clients} clients {o.concurrent_tps[-1]:7.1f} / "
                      f"{t.concurrent_tps[-1]:7.1f} tok/s = "
                      f"{o.concurrent_tps[-1] / t.concurrent_tps[-1]:.3f}", flush=True)
        finally:
            for server in (ours, theirs):
                server.stop()
    report(args, sides)
    return 0


def report(args: argparse.Namespace, sides: dict[str, Side]) -> None:
    o, t = sides["ours"], sides["theirs"]
    first_o, first_t = o.single[0], t.single[0]
    print(f"model {Path(args.model_path).name}, {args.threads} threads, ngl {args.ngl}, "
          f"{args.parallel} slots of {args.ctx} tokens, batch {args.batch}, {args.rounds} rounds; "
          f"one client: {args.single_runs} requests a round (median), {args.max_tokens} tokens "
          f"after a {first_o.prompt_tokens}-token prompt (llama-server: {first_t.prompt_tokens}); "
          f"{args.clients} clients x {args.concurrent_max_tokens} tokens")
    print(f"  chunks per reply: ours {first_o.chunks}, llama-server {first_t.chunks}; "
          f"runs discarded for load: ours {o.discarded}, llama-server {t.discarded}")
    for kind, label in (("single", "one client"), ("concurrent", f"{args.clients} clients")):
        print(f"  CPU per generated token, {label}: ours "
              f"{o.cpu.get(kind, CpuTally()).per_token()}; "
              f"llama-server {t.cpu.get(kind, CpuTally()).per_token()}")
    server_tps = [r.server_tps for r in t.single if r.server_tps]
    if server_tps:
        print(f"  llama-server's own decode timer: {statistics.median(server_tps):.1f} tok/s")
    print(f"  {args.clients} clients, median TTFT: "
          f"ours {statistics.median(o.concurrent_ttft) * 1000:.1f} ms, "
          f"llama-server {statistics.median(t.concurrent_ttft) * 1000:.1f} ms")
    summary("decode, one client", [r.decode_tps for r in o.single],
            [r.decode_tps for r in t.single], 0.95, True, "tok/s")
    summary("TTFT, one client", [r.ttft_s for r in o.single], [r.ttft_s for r in t.single],
            1.10, False, "ms", scale=1000)
    summary(f"total tok/s, {args.clients} clients", o.concurrent_tps, t.concurrent_tps, 0.90,
            True, "tok/s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            key: {"decode_tps": [r.decode_tps for r in s.single],
                  "ttft_s": [r.ttft_s for r in s.single],
                  "concurrent_tps": s.concurrent_tps,
                  "concurrent_ttft_s": s.concurrent_ttft}
            for key, s in sides.items()}, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="GGUF file (default: the bundled model, served as 'default')")
    parser.add_argument("--llama-server", type=Path, default=None, help="prebuilt binary")
    parser.add_argument("--macllm-cmd", default=f"{sys.executable} -m macllm_app.cli",
                        help="how to run the macllm CLI")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ngl", type=int, default=0, help="GPU layers (99: all)")
    parser.add_argument("--parallel", type=int, default=8, help="slots of both servers")
    parser.add_argument("--ctx", type=int, default=2048, help="context per slot")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single-runs", type=int, default=3,
                        help="one-client requests per server and round (median)")
    parser.add_argument("--max-tokens", type=int, default=256, help="one client's reply")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--concurrent-max-tokens", type=int, default=128)
    parser.add_argument("--prompt-words", type=int, default=120)
    parser.add_argument("--max-others", type=float, default=0.15,
                        help="share of one core other processes may use during a run")
    parser.add_argument("--retries", type=int, default=20,
                        help="runs repeated at most (in all) because others were busy")
    parser.add_argument("--max-wait", type=float, default=120.0,
                        help="seconds to wait at most for a quiet machine before a run")
    parser.add_argument("--start-timeout", type=float, default=120.0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    parser.add_argument("--verbose", action="store_true", help="print every timed run")
    parser.add_argument("--keep-logs", type=Path, default=None,
                        help="copy both servers' logs into this folder")
    args = parser.parse_args()
    if args.clients > args.parallel:
        parser.error("--clients must not exceed --parallel (they would queue)")

    from macllm_app.core.default_model import default_model_path

    args.model_path = args.model or str(default_model_path())
    binary = args.llama_server or build_llama_tool("llama-server", args.jobs)
    with tempfile.TemporaryDirectory(prefix="macllm-server-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        theirs = llama_server(binary, args.model_path, args, Path(tmp) / "llama-server.log")
        ours = our_server(args.model_path, args, home, Path(tmp) / "macllm-serve.log")
        # a plain `kill` stops the servers too (they run in sessions of their own)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            return asyncio.run(compare(args, ours, theirs))
        except RuntimeError as exc:
            print(f"server_compare: {exc}", file=sys.stderr)
            return 1
        finally:
            for server in (ours, theirs):
                server.stop()
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for server in (theirs, ours):
                    if server.log_path.exists():
                        shutil.copy(server.log_path, args.keep_logs / server.log_path.name)


if __name__ == "__main__":
    sys.exit(main())
