"""Load GGUF files in llama.cpp one after another; print `ok|error NAME` per file.

Used to show that mutants our validator accepts do not crash the native loader:
the caller restarts this process after a crash, skipping the file that killed it.
"""

from __future__ import annotations

import sys


def main(paths: list[str]) -> None:
    import llama_cpp

    for path in paths:
        print(f"start {path}", flush=True)
        try:
            llm = llama_cpp.Llama(model_path=path, n_ctx=128, n_threads=1, verbose=False)
            llm("hi", max_tokens=2)
            del llm
            print(f"ok {path}", flush=True)
        except Exception:  # a load failure llama.cpp reports cleanly is fine
            print(f"error {path}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
