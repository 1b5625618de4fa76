"""Two kinds of failure: user errors (a clear one-line message) and bugs.

A user error is something the user can act on: a missing file, a full disk,
a model that is not a GGUF file. It is shown as one line and never as a
traceback. Anything else is a bug in MacLLM: it keeps its traceback (in the
log and in the report the app offers) and is never dressed up as a user error.
A crashed engine host or job (`EngineCrashed`, `JobFailed(crashed=True)`) is
neither: it is told in plain words, and the app carries on.
"""

from __future__ import annotations


def one_line(text: object, fallback: str = "unknown error") -> str:
    """A message (often an exception) with its whitespace and line breaks collapsed."""
    return " ".join(str(text).split()) or fallback


class UserError(Exception):
    """A known, user-caused problem: shown as one line, never as a traceback."""


class ModelFileError(UserError):
    """A model file or folder is missing, corrupt or unsafe."""


class TemplateError(UserError):
    """A chat template failed to render or tried something unsafe."""


class EngineCrashed(Exception):
    """The engine host process died (native crash, kill, out of memory)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"The engine stopped unexpectedly ({detail}).")
        self.detail = detail


class EngineError(UserError):
    """The engine reported a problem it survived (bad request, load failure)."""


class RemoteBug(Exception):
    """A bug raised in a child process (the engine host or a job), with its traceback.

    The child survived or ended cleanly; the exception itself could not cross
    the pipe, so its summary and traceback text do.
    """

    def __init__(self, summary: str, remote_traceback: str, where: str) -> None:
        super().__init__(f"{summary} (in {where})")
        self.summary = summary
        self.remote_traceback = remote_traceback
        self.where = where


class Cancelled(Exception):
    """The user cancelled; callers treat it as a normal outcome."""


def is_bug(exc: BaseException) -> bool:
    """True for an exception that is MacLLM's fault (it deserves a report)."""
    return not isinstance(exc, UserError | EngineCrashed | Cancelled)


def describe(exc: BaseException) -> str:
    """One line for the user: the message of a user error or crash, a bug's summary."""
    if isinstance(exc, RemoteBug):
        return f"A bug in MacLLM: {one_line(exc.summary)}"
    if is_bug(exc):
        detail = one_line(exc, "")
        name = type(exc).__name__
        return f"A bug in MacLLM: {name}: {detail}" if detail else f"A bug in MacLLM: {name}"
    return one_line(exc, type(exc).__name__)
