"""Samples for the hardware monitor: memory pressure, the machine's memory, MacLLM's
processes (resident memory, CPU %) and what the engine counts inside its host.

The Monitor pane samples as a task, `macllm monitor` in a loop; both get the
same `MonitorSample`, and the same JSON. A sample reads a few files (or, on a
Mac, runs `sysctl` and `vm_stat`) and asks psutil about a handful of processes:
a few milliseconds, off the GUI thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from macllm_app.core.platform import current
from macllm_app.core.platform.base import MemoryPressure, Platform, SystemMemory
from macllm_app.core.types import HostMemory

APP = "app"
ENGINE_HOST = "engine host"
JOB = "job"
OTHER = "process"
#: How MacLLM's own commands show up in a process list (the app, the CLI, `-m` runs).
OWN_COMMANDS = ("macllm-app", "macllm", "macllm_app")


@dataclass(frozen=True, slots=True)
class ProcessReading:
    role: str           # APP, ENGINE_HOST, JOB or OTHER
    name: str           # what the monitor calls it ("MacLLM", a job's title, ...)
    pid: int
    rss_bytes: int
    cpu_percent: float  # of one core, since the previous sample of this process


@dataclass(frozen=True, slots=True)
class MonitorSample:
    time: float                   # seconds since the epoch
    pressure: MemoryPressure
    free_percent: int | None
    memory: SystemMemory
    processes: tuple[ProcessReading, ...]
    engine: HostMemory | None     # None while the host is busy or there is none

    def process(self, role: str) -> ProcessReading | None:
        return next((p for p in self.processes if p.role == role), None)

    def to_json(self) -> dict[str, Any]:
        """One JSON object (what `macllm monitor --json` prints a line of)."""
        data = asdict(self)
        data["memory"]["available_bytes"] = self.memory.available_bytes
        return data


class ProcessWatch:
    """CPU % needs two readings of a process: psutil keeps each one's previous times."""

    def __init__(self) -> None:
        self._known: dict[int, psutil.Process] = {}

    def read(self, role: str, name: str, pid: int) -> ProcessReading | None:
        try:
            process = self._known.get(pid)
            if process is None:
                process = self._known[pid] = psutil.Process(pid)
                process.cpu_percent(None)  # the first call only starts the clock
            with process.oneshot():
                return ProcessReading(role, name, pid, int(process.memory_info().rss),
                                      float(process.cpu_percent(None)))
        except psutil.Error:
            self._known.pop(pid, None)
            return None

    def keep_only(self, pids: Iterable[int]) -> None:
        wanted = set(pids)
        for pid in [pid for pid in self._known if pid not in wanted]:
            del self._known[pid]


class Sampler:
    """Takes samples; keep one per monitor so CPU % spans the time between samples."""

    def __init__(self, platform: Platform | None = None) -> None:
        self.platform = platform or current()
        self.watch = ProcessWatch()

    def sample(self, processes: Sequence[tuple[str, str, int]],
               engine: HostMemory | None = None) -> MonitorSample:
        """`processes`: (role, name, pid) of each process to watch."""
        readings = tuple(reading for role, name, pid in processes
                         if (reading := self.watch.read(role, name, pid)) is not None)
        self.watch.keep_only(pid for _role, _name, pid in processes)
        return MonitorSample(time=time.time(), pressure=self.platform.memory_pressure(),
                             free_percent=self.platform.memory_free_percent(),
                             memory=self.platform.system_memory(), processes=readings,
                             engine=engine)


def app_processes(host_pid: int | None, jobs: Iterable[tuple[str, int]]) -> list[
        tuple[str, str, int]]:
    """This app's own processes: itself, its engine host, its running jobs."""
    found = [(APP, "MacLLM", os.getpid())]
    if host_pid is not None:
        found.append((ENGINE_HOST, "Engine host", host_pid))
    found.extend((JOB, title, pid) for title, pid in jobs)
    return found


def macllm_processes(exclude: int | None = None) -> list[tuple[str, str, int]]:
    """MacLLM's processes running on this machine, seen from outside (for
    `macllm monitor`): the app and CLI commands, and the children they spawned
    (engine hosts and jobs)."""
    own: list[psutil.Process] = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info.get("cmdline") or ())
        if process.pid != exclude and any(name in command for name in OWN_COMMANDS) \
                and "multiprocessing" not in command:
            own.append(process)
    found: list[tuple[str, str, int]] = []
    for process in own:
        command = " ".join(process.info.get("cmdline") or ())
        found.append((APP, "MacLLM" if "macllm-app" in command else "macllm command",
                      process.pid))
        try:
            children = process.children(recursive=True)
        except psutil.Error:
            continue
        for child in children:
            try:
                child_command = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "multiprocessing" in child_command and "resource_tracker" not in child_command:
                found.append((OTHER, f"MacLLM child of {process.pid}", child.pid))
    return found
