"""`macllm-app` start to interactive window, and the GUI process's idle memory.

Starts the real app (offscreen unless a display is set) with a fresh profile, the
way a user starts it, several times. Targets: interactive <= 1.5 s, idle RSS <= 200 MB.
The model loads in the engine host, a separate process, so it is not in this RSS.
`--app dist/MacLLM/MacLLM` times the frozen bundle instead (target 2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import verdict


def app_command(app: str | None = None) -> list[str]:
    if app:
        return [str(Path(app).resolve())]
    script = shutil.which("macllm-app", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "macllm_app"]


def one_start(app: str | None = None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as home:
        probe = Path(home) / "probe.json"
        env = {**os.environ, "MACLLM_HOME": home, "MACLLM_STARTUP_PROBE": str(probe)}
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        started = time.time()
        subprocess.run(app_command(app), env=env, check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = json.loads(probe.read_text())
    return result["interactive_at"] - started, int(result["idle_rss_bytes"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--app", default=None, help="an executable to start instead")
    args = parser.parse_args()
    one_start(args.app)  # warm the file cache, as a second launch would be
    runs = [one_start(args.app) for _ in range(args.runs)]
    startup = statistics.median(r[0] for r in runs)
    rss_mb = statistics.median(r[1] for r in runs) / 2**20
    print(f"{' '.join(app_command(args.app))}: {args.runs} starts")
    print(f"  start to interactive window: median {startup:.2f} s "
          f"(all: {', '.join(f'{r[0]:.2f}' for r in runs)})")
    print(f"  idle RSS of the GUI process: median {rss_mb:.0f} MB")
    print(verdict("start-up seconds", startup, 2.0 if args.app else 1.5,
                  higher_is_better=False))
    print(verdict("idle RSS MB", rss_mb, 200, higher_is_better=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
