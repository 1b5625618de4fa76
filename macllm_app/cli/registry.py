"""Command groups added to `macllm` beyond chat and bench."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from macllm_app.cli import convert, evaluate, finetune, models, monitor, quantize, serve

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

REGISTRARS: list[Registrar] = [models.register, convert.register, monitor.register,
                              quantize.register, evaluate.register, finetune.register,
                              serve.register]
