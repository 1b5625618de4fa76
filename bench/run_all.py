"""`make bench`: run every benchmark script in turn and show its ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["engine_overhead.py", "multi_turn.py", "gui_streaming.py", "startup.py",
           "monitor_cost.py",
           "llama_bench_compare.py", "server_compare.py", "mlx_overhead.py",
           "engines_compare.py"]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        script = HERE / name
        if not script.exists():
            continue
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
