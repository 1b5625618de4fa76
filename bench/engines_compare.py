"""The same model on both engines, side by side: `macllm bench --json` for each.

Informational: decode tok/s, prompt tok/s, TTFT and peak memory of the default
model (GGUF in llama.cpp; its MLX copy in MLX).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

ROWS = [("decode tok/s", "decode_tps", "{:.1f}"), ("prompt tok/s", "prompt_tps", "{:.1f}"),
        ("TTFT ms", "ttft_ms", "{:.0f}"), ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
        ("engine peak MB", "engine_peak_mb", "{:.0f}"), ("generated tokens", "generated_tokens",
                                                          "{:.0f}")]


def bench(engine: str, tokens: int, repeat: int, model: str | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "macllm_app.cli", "bench", "--engine", engine, "--json",
               "--tokens", str(tokens), "--repeat", str(repeat)]
    if model:
        command += ["--model", model]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    results = {engine: bench(engine, args.tokens, args.repeat, args.model)
               for engine in ("llama.cpp", "mlx")}
    print(f"model {results['llama.cpp']['model']}, greedy, median of {args.repeat}")
    print(f"  {'':18}{'llama.cpp':>12}{'mlx':>12}")
    for label, key, fmt in ROWS:
        cells = [fmt.format(results[e].get(key, 0.0)) for e in ("llama.cpp", "mlx")]
        print(f"  {label:18}{cells[0]:>12}{cells[1]:>12}")
    for engine, result in results.items():
        print(f"  {engine}: device {result['device']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
