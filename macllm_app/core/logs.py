"""Named loggers: one per subsystem (`macllm.engine.host`, `macllm.ui.chat`, ...).

The app logs to `macllm-app.log`, the engine host to `engine-host.log`, both in
the profile's logs folder (and to stderr).
"""

from __future__ import annotations

import logging
import logging.handlers

from macllm_app.core import paths

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
APP_LOG = "macllm-app.log"
HOST_LOG = "engine-host.log"


def setup_logging(level: int = logging.INFO, *, to_file: bool = True,
                  file_name: str = APP_LOG) -> None:
    """Log to stderr, and to a rotating file in the profile's logs folder."""
    root = logging.getLogger("macllm")
    if root.handlers:
        return
    root.setLevel(level)
    stream = logging.StreamHandler()
    stream.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(stream)
    if to_file:
        handler = logging.handlers.RotatingFileHandler(
            paths.logs_dir() / file_name, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
