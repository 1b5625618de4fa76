"""Two kinds of failure: user errors (a clear one-line message) and bugs."""

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


class Cancelled(Exception):
    """The user cancelled; callers treat it as a normal outcome."""
