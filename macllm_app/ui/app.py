"""`macllm-app`: the GUI entry point (and `--self-test`, an offscreen smoke run)."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from macllm_app.ui.main_window import MainWindow
    from macllm_app.ui.panes.library.importing import FileOpenFilter

DESCRIPTION = "MacLLM: run local language models."


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="macllm-app", description=DESCRIPTION)
    parser.add_argument("--self-test", action="store_true",
                        help="start offscreen, load the default model, stream a short "
                             "reply, exit 0 (or 1 with the reason)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="self-test time limit in seconds (default 120)")
    parser.add_argument("paths", nargs="*", metavar="MODEL",
                        help="GGUF files or MLX folders to open (import into the library)")
    args, _qt_args = parser.parse_known_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from macllm_app.ui.selftest import run_self_test

        return run_self_test(args.timeout, args.paths)
    return run_gui(args.paths)


def run_gui(paths: Sequence[str] = ()) -> int:
    from PySide6.QtWidgets import QApplication

    from macllm_app.core.logs import setup_logging
    from macllm_app.ui.crash import CrashHandler
    from macllm_app.ui.icons import app_icon
    from macllm_app.ui.main_window import MainWindow
    from macllm_app.ui.theme import apply_theme

    setup_logging()
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    app.setApplicationName("MacLLM")
    app.setOrganizationName("MacLLM")
    app.setApplicationDisplayName("MacLLM")
    apply_theme(app)
    app.setWindowIcon(app_icon())
    crash = CrashHandler()
    crash.install()
    window = MainWindow()
    install_file_open(app, window)
    app.aboutToQuit.connect(window.shutdown)
    window.show()
    if paths:  # "Open With" on Linux, or a path on the command line
        window.open_files([str(Path(path).resolve()) for path in paths])
    probe = os.environ.get("MACLLM_STARTUP_PROBE")
    if probe:
        from macllm_app.ui.startup_probe import StartupProbe

        StartupProbe(app, probe).start()
    try:
        return int(app.exec())
    finally:
        crash.uninstall()


def install_file_open(app: QApplication, window: MainWindow) -> FileOpenFilter:
    """Files opened from the Dock or Finder ("Open With") are imported like drops."""
    from macllm_app.ui.panes.library.importing import FileOpenFilter

    file_open = FileOpenFilter(window.open_files, window)
    app.installEventFilter(file_open)
    return file_open


if __name__ == "__main__":
    sys.exit(main())
