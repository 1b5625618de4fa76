"""What the hardware monitor costs the app: CPU time of the GUI process (its pool
threads included) over a stretch of idle time, with the Monitor pane on screen,
with it hidden (the status bar's pressure still sampled), and with sampling stopped.

Target: the monitor costs at most 1 % of one core while visible, less when hidden.
Runs offscreen with the default model loaded (so the engine host is sampled too).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from common import verdict


def cpu_share(app: Any, seconds: float) -> float:
    """Share of one core this process used while the event loop ran for `seconds`."""
    start_cpu, start = time.process_time(), time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.005)
    return (time.process_time() - start_cpu) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["MACLLM_HOME"] = tempfile.mkdtemp(prefix="macllm-bench-")

    from PySide6.QtWidgets import QApplication

    from macllm_app.core.settings import Settings
    from macllm_app.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    settings = Settings()
    settings.engine.n_threads = 2
    window = MainWindow(settings)
    window.show()
    deadline = time.monotonic() + 120
    while not window.engine.is_ready():
        if time.monotonic() > deadline:
            raise SystemExit("the model did not load in time")
        app.processEvents()
        time.sleep(0.01)
    window.show_pane("monitor")
    cpu_share(app, 3.0)  # the graphs are built; warm up
    shares: dict[str, list[float]] = {"visible": [], "hidden": [], "stopped": []}
    for _ in range(args.rounds):
        window.monitor.start()
        window.show_pane("monitor")
        shares["visible"].append(cpu_share(app, args.seconds))
        window.show_pane("chat")
        shares["hidden"].append(cpu_share(app, args.seconds))
        window.monitor.stop()
        shares["stopped"].append(cpu_share(app, args.seconds))
    window.close()
    median = {key: sorted(values)[len(values) // 2] for key, values in shares.items()}
    for key, values in shares.items():
        print(f"{key:8}: {', '.join(f'{v * 100:.2f}' for v in values)} % of a core "
              f"(median {median[key] * 100:.2f} %)")
    visible = (median["visible"] - median["stopped"]) * 100
    hidden = (median["hidden"] - median["stopped"]) * 100
    print(verdict("monitor visible, % of one core above sampling stopped", visible, 1.0,
                  higher_is_better=False))
    print(verdict("monitor hidden, % of one core above sampling stopped", hidden, visible,
                  higher_is_better=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
