"""One way to run code in a child process; the engine host and jobs both stand on it.

Engines and heavy jobs (conversion, later quantize and training) run outside
the app's process, so a native crash, a kill or an out-of-memory death takes
only the child with it. A `ChildProcess` promises:

- spawn: the start method that works the same on macOS, Linux and inside a
  frozen app (where `multiprocessing.freeze_support()` runs first thing);
- Ctrl+C is the parent's: the child ignores SIGINT, so a Ctrl+C in a terminal
  stops the command through the parent's own cancel path;
- a cancel flag shared with the child, which polls it between steps (once
  per token, per tensor, per training step): cancel is cooperative first;
- a pipe of picklable messages; the parent's end sees EOF as soon as the
  child dies, so a crash is noticed at once, not after a timeout;
- `stop(grace_s)` waits for the child to end by itself, then kills it: the
  forced step for native calls that never look at the flag. Each user names
  its grace period and says why it is that long;
- `describe_exit()`: how the child ended, in plain words.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

CancelFlag = Any  # a multiprocessing RawValue("i"): 0 running, 1 asked to stop
ChildMain = Callable[..., None]
"""`main(conn, cancel_flag, *args)`: a module-level function (spawn imports it by name)."""


def describe_exit(exitcode: int | None) -> str:
    """Plain words for how a process ended."""
    if exitcode is None:
        return "it stopped responding"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if name == "SIGKILL":
            return "killed by SIGKILL, possibly out of memory"
        return f"crashed with {name}"
    return f"exit code {exitcode}"


def _child_entry(main: ChildMain, conn: Connection, cancel_flag: CancelFlag,
                 *args: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    main(conn, cancel_flag, *args)


class ChildProcess:
    """A spawned child running `main(conn, cancel_flag, *args)`, and the parent's end of it."""

    def __init__(self, main: ChildMain, args: tuple[Any, ...] = (), *, name: str,
                 duplex: bool = False) -> None:
        ctx = mp.get_context("spawn")
        self.cancel_flag: CancelFlag = ctx.RawValue("i", 0)
        self.conn, child_conn = ctx.Pipe(duplex=duplex)
        self._child_conn: Connection | None = child_conn
        self._process: BaseProcess = ctx.Process(
            target=_child_entry, args=(main, child_conn, self.cancel_flag, *args), name=name,
            daemon=True)

    # -- lifetime -----------------------------------------------------------
    def start(self) -> None:
        self._process.start()
        if self._child_conn is not None:
            self._child_conn.close()  # so recv() sees EOF as soon as the child dies
            self._child_conn = None

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode

    def is_alive(self) -> bool:
        return self._process.is_alive()

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the child to end; True if it has."""
        self._process.join(timeout)
        return not self._process.is_alive()

    def kill(self) -> None:
        """End the child at once (SIGKILL): the forced step of a cancel."""
        if self._process.is_alive():
            self._process.kill()

    def stop(self, grace_s: float) -> None:
        """Let the child end by itself within `grace_s`, else kill it; then close the pipe."""
        if not self.join(grace_s):
            self.kill()
            self.join(grace_s)
        self.conn.close()

    def describe_exit(self) -> str:
        return describe_exit(self._process.exitcode)

    # -- cancel -------------------------------------------------------------
    def request_cancel(self) -> None:
        """Ask the child to stop at its next step (safe from any thread)."""
        self.cancel_flag.value = 1

    def clear_cancel(self) -> None:
        self.cancel_flag.value = 0

    @property
    def cancel_requested(self) -> bool:
        return bool(self.cancel_flag.value)
