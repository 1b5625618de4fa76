"""The `macllm` command: a thin front end over core/ (`main` parses and dispatches; each
module holds one command group)."""

from macllm_app.cli.main import main

__all__ = ["main"]
