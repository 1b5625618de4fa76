"""The GUI thread's longest stall while the Server pane serves 32 streaming clients.

The app's Server pane runs offscreen with the server on the default model; a
separate client process (aiohttp) first sends one warm-up request (the model
loads), then opens 32 streaming chat completions at once (`--tokens` each,
ignore_eos). A 5 ms QTimer heartbeat on the GUI thread records its gaps; the
stall is the longest gap minus the interval while the 32 streams run.

Modes: `qt` (the server on the Qt event loop through qasync), `thread` (on an
asyncio loop thread of its own), `both` (each in a fresh process, one after the
other). Target: longest stall <= 50 ms.

    .venv/bin/python bench/server_gui_stall.py [--mode both] [--clients 32] [--tokens 256]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import verdict

HEARTBEAT_MS = 5
TARGET_MS = 50.0


# -- the client process ----------------------------------------------------------------
async def _stream(session: Any, url: str, tokens: int, index: int) -> dict[str, Any]:
    body = {"model": "default", "stream": True, "max_tokens": tokens, "ignore_eos": True,
            "temperature": 0.7, "seed": index,
            "messages": [{"role": "user", "content": f"Tell story number {index} about a fox."}]}
    started = time.monotonic()
    first = 0.0
    chunks = 0
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        status = response.status
        async for line in response.content:
            if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                    chunks += 1
                    first = first or time.monotonic()
    return {"status": status, "chunks": chunks, "ttft_s": (first or time.monotonic()) - started,
            "seconds": time.monotonic() - started}


async def _client(url: str, clients: int, tokens: int) -> None:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _stream(session, url, 8, 0)  # the model loads
        print(json.dumps({"go": time.monotonic()}), flush=True)
        results = await asyncio.gather(*(_stream(session, url, tokens, i + 1)
                                         for i in range(clients)))
        print(json.dumps({"end": time.monotonic(), "results": results}), flush=True)


# -- the GUI process ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_qt_until(done: Any, timeout_s: float) -> None:
    """Run the Qt event loop (as app.exec() does) until `done()` or the time is up."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + timeout_s
    check = QTimer()
    check.timeout.connect(lambda: loop.quit() if done() or time.monotonic() > deadline
                          else None)
    check.start(50)
    loop.exec()
    check.stop()


class GcPauses:
    """The cyclic garbage collector's pauses (it stops every thread of the process)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []  # (start, seconds, generation)
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.monotonic()
        else:
            self.pauses.append((self._started, time.monotonic() - self._started,
                                info["generation"]))

    def longest(self, start: float, end: float) -> tuple[float, int]:
        inside = [(seconds, gen) for at, seconds, gen in self.pauses if start <= at <= end]
        return max(inside, default=(0.0, -1))


def _measure(mode: str, clients: int, tokens: int, timeout_s: float,
             freeze_gc: bool) -> dict[str, Any]:
    import gc

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from macllm_app.ui.panes.server.pane import ServerPane

    _app = QApplication.instance() or QApplication([])
    pane = ServerPane(mode)  # type: ignore[arg-type]
    pane.resize(1000, 700)
    pane.show()
    pane.port.setValue(_free_port())
    config = pane.config().model_copy(update={"parallel": clients, "queue_size": clients,
                                              "n_ctx": 512 + tokens})
    pane.start(config)
    _run_qt_until(lambda: pane.runner.state == "on" or bool(pane.error.text()), 60)
    if freeze_gc:
        gc.collect()
        gc.freeze()  # what start-up built lives on; the collector stops walking it
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    if pane.runner.state != "on":
        raise SystemExit(f"the server did not start: {pane.error.text()}")
    url = pane.runner.url

    beats: list[tuple[float, float]] = []  # (wall clock, the GUI thread's CPU time)
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(lambda: beats.append((time.monotonic(), time.thread_time())))
    heartbeat.start()
    lines: list[dict[str, Any]] = []
    client = subprocess.Popen([sys.executable, __file__, "--client", url, "--clients",
                               str(clients), "--tokens", str(tokens)],
                              stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line)
                                                          for line in client.stdout or ()),
                              daemon=True)
    reader.start()
    _run_qt_until(lambda: not reader.is_alive(), timeout_s)
    heartbeat.stop()
    client.kill()
    rows = pane.log_model.rowCount()
    pane.shutdown()
    go = next((line["go"] for line in lines if "go" in line), None)
    end = next((line for line in lines if "end" in line), None)
    if go is None or end is None:
        raise SystemExit(f"{mode}: the client did not finish ({lines})")
    window = [b for b in beats if go <= b[0] <= end["end"]]
    gaps = [(later[0] - earlier[0], later[1] - earlier[1])
            for earlier, later in itertools.pairwise(window)]
    longest, busy = max(gaps)
    gc_pause, gc_generation = gc_pauses.longest(go, end["end"])
    walls = sorted(gap for gap, _cpu in gaps)
    results = end["results"]
    seconds = end["end"] - go
    return {"mode": mode, "stall_ms": longest * 1000 - HEARTBEAT_MS,
            "stall_cpu_ms": busy * 1000,  # of it, the GUI thread computing (not waiting)
            "busiest_gap_cpu_ms": max(cpu for _gap, cpu in gaps) * 1000,
            "gc_pause_ms": gc_pause * 1000, "gc_generation": gc_generation,
            "p99_gap_ms": walls[int(len(walls) * 0.99)] * 1000,
            "beats": len(window), "seconds": seconds,
            "ok": sum(r["status"] == 200 for r in results),
            "chunks": sum(r["chunks"] for r in results),
            "tok_s": sum(r["chunks"] for r in results) / seconds,
            "ttft_max_s": max(r["ttft_s"] for r in results), "log_rows": rows}


def _run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """One mode in a fresh process with a private profile."""
    with tempfile.TemporaryDirectory(prefix="macllm-stall-") as home:
        env = {**os.environ, "MACLLM_HOME": home, "QT_QPA_PLATFORM": "offscreen"}
        freeze = ["--freeze-gc"] if args.freeze_gc else []
        out = subprocess.run([sys.executable, __file__, "--measure", mode, "--clients",
                              str(args.clients), "--tokens", str(args.tokens), *freeze],
                             env=env, capture_output=True, text=True, check=False,
                             timeout=args.timeout + 120)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stdout}\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("qt", "thread", "both"), default="both")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--freeze-gc", action="store_true",
                        help="gc.freeze() once the server runs (the collector's full passes "
                             "then skip what start-up built)")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("qt", "thread"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(_client(args.client, args.clients, args.tokens))
        return 0
    if args.measure:
        print(json.dumps(_measure(args.measure, args.clients, args.tokens, args.timeout,
                                  args.freeze_gc)))
        return 0
    modes = ("qt", "thread") if args.mode == "both" else (args.mode,)
    print(f"{args.clients} streaming clients x {args.tokens} tokens (ignore_eos), "
          f"heartbeat {HEARTBEAT_MS} ms, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    for mode in modes:
        r = _run_mode(mode, args)
        load = os.getloadavg()[0]
        print(f"  {mode:6}: {r['ok']}/{args.clients} ok, {r['chunks']} chunks in "
              f"{r['seconds']:.1f} s ({r['tok_s']:.0f} tok/s), first token within "
              f"{r['ttft_max_s']:.2f} s; heartbeat gaps p99 {r['p99_gap_ms']:.1f} ms, "
              f"{r['log_rows']} logged, load average {load:.1f}")
        print(f"          the GUI thread computed {r['stall_cpu_ms']:.1f} ms of the longest "
              f"gap (the rest it waited: other processes, the GIL); its busiest gap "
              f"{r['busiest_gap_cpu_ms']:.1f} ms of CPU; longest GC pause "
              f"{r['gc_pause_ms']:.1f} ms (generation {r['gc_generation']})")
        print("  " + verdict(f"{mode}: longest GUI stall ms", r["stall_ms"], TARGET_MS,
                             higher_is_better=False)
              + f"  (ratio {r['stall_ms'] / TARGET_MS:.2f} of the target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
