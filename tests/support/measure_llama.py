"""Peak RSS of a real llama.cpp load, measured in a fresh process (`python -m ...`).

`bare`: the interpreter plus `import llama_cpp` (the engine's fixed overhead).
`load MODEL N_CTX`: Llama(model, n_ctx) and a short generation.
Prints one JSON object with ru_maxrss in bytes.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any


def peak_bytes() -> int:
    unit = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit


def main(argv: list[str]) -> dict[str, object]:
    import llama_cpp

    if argv[0] == "bare":
        return {"peak_bytes": peak_bytes()}
    model, n_ctx = argv[1], int(argv[2])
    llm = llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_threads=2, verbose=False)
    out: Any = llm("The capital of France is", max_tokens=8, temperature=0.0)
    return {"peak_bytes": peak_bytes(), "n_ctx": n_ctx, "text": out["choices"][0]["text"]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
