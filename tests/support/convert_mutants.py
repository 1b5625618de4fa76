"""Convert GGUF files to MLX and run what converts; print `ok|error|bug NAME` per file.

Used to show that mutants our validator accepts do not crash the converter (which
reads tensors with MLX's native GGUF loader) or the MLX engine: the caller restarts
this process after a crash, skipping the file that killed it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main(paths: list[str]) -> None:
    from macllm_app.core.convert.gguf_to_mlx import convert_gguf_to_mlx
    from macllm_app.core.engines.mlx_engine import MLXEngine
    from macllm_app.core.errors import UserError
    from macllm_app.core.types import GenerationRequest, LoadConfig, SamplingParams

    request = GenerationRequest(prompt="Hi", sampling=SamplingParams.greedy(max_tokens=2))

    with tempfile.TemporaryDirectory() as out:
        for path in paths:
            print(f"start {path}", flush=True)
            try:
                folder = convert_gguf_to_mlx(Path(path), Path(out) / f"{Path(path).stem}-mlx")
                engine = MLXEngine()
                engine.load(LoadConfig(model_path=str(folder), engine="mlx", n_ctx=256),
                            lambda f, m: None)
                list(engine.stream(request, lambda: False))
                engine.unload()
                print(f"ok {path}", flush=True)
            except UserError as exc:
                one_line = "\n" not in str(exc)
                print(f"{'error' if one_line else 'bug'} {path} {exc!s:.200}", flush=True)
            except Exception as exc:  # anything but a clear refusal is a bug
                print(f"bug {path} {type(exc).__name__}: {exc!s:.200}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
