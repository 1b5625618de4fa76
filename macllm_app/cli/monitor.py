"""`macllm monitor`: the hardware monitor's samples, as lines of text or of JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from macllm_app.cli.interrupt import ctrl_c_stops
from macllm_app.core.hardware.monitor import MonitorSample, Sampler, macllm_processes
from macllm_app.core.units import human_size


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("monitor", help="memory pressure, memory and MacLLM's processes, live")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="seconds between samples (default 1)")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="stop after N samples (default: until Ctrl+C)")
    p.set_defaults(handler=run)


def text_line(sample: MonitorSample) -> str:
    memory = sample.memory
    parts = [time.strftime("%H:%M:%S", time.localtime(sample.time)),
             f"pressure {sample.pressure}",
             f"used {human_size(memory.used_bytes)} of {human_size(memory.total_bytes)}",
             f"swap {human_size(memory.swap_used_bytes)}"]
    parts += [f"{p.name} (pid {p.pid}) {human_size(p.rss_bytes)} {p.cpu_percent:.0f}% CPU"
              for p in sample.processes]
    return " · ".join(parts)


def run(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        print("macllm: --interval must be more than 0 seconds", file=sys.stderr)
        return 2
    sampler = Sampler()
    taken = 0
    with ctrl_c_stops() as should_stop:
        while not should_stop():
            sample = sampler.sample(macllm_processes(exclude=os.getpid()))
            print(json.dumps(sample.to_json()) if args.json else text_line(sample), flush=True)
            taken += 1
            if args.count and taken >= args.count:
                break
            deadline = time.monotonic() + args.interval
            while not should_stop() and time.monotonic() < deadline:
                time.sleep(min(0.1, args.interval))
    return 0
