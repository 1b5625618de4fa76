"""Convert a llama GGUF file into an MLX model folder that plain `mlx_lm.load` reads.

The folder holds `config.json` (with mlx-lm's per-layer `quantization`),
`model.safetensors` (GGUF's Q4_0/Q4_1/Q8_0 blocks kept as MLX 4- and 8-bit
arrays, other types decoded), and tokenizer files rebuilt from the GGUF
vocabulary. It is written beside `dest` and renamed into place when complete.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from macllm_app.core.convert.gguf_source import load_gguf, open_llama_gguf
from macllm_app.core.convert.gguf_tokenizer import check_tokenizer_kind, write_tokenizer_files
from macllm_app.core.convert.llama_weights import llama_config, map_weights, quantization_config
from macllm_app.core.convert.staging import check_dest_folder, staged_folder
from macllm_app.core.errors import Cancelled
from macllm_app.core.progress import monotonic, span
from macllm_app.core.types import ProgressCallback, StopCheck

log = logging.getLogger("macllm.convert")


def convert_gguf_to_mlx(src: Path, dest: Path, progress: ProgressCallback | None = None,
                        should_stop: StopCheck | None = None) -> Path:
    """Convert `src` (a llama GGUF file) into the new MLX folder `dest`; return `dest`.

    Raises:
        ModelFileError: the file is not a valid GGUF, or not a model we can convert.
        UserError: `dest` exists and is not an empty folder, or cannot be written.
        Cancelled: `should_stop` returned True; nothing is left behind.
    """
    import mlx.core as mx

    from macllm_app.core.formats.mlx_folder import validate_mlx_folder

    report = monotonic(progress)
    stop = should_stop or (lambda: False)

    def check_stop() -> None:
        if stop():
            raise Cancelled

    src, dest = Path(src), Path(dest)
    started = time.monotonic()
    check_dest_folder(dest)
    report(0.0, f"Checking {src.name}")
    header = open_llama_gguf(src)
    check_tokenizer_kind(header.kv, src.name)
    check_stop()
    with staged_folder(dest) as tmp:
        contents = load_gguf(header, span(report, 0.02, 0.4), stop)
        check_stop()
        config = llama_config(contents)
        weights, bits = map_weights(contents, config)
        quant = quantization_config(bits)
        if quant is not None:
            config["quantization"] = quant
        report(0.4, "Writing the tokenizer")
        eog = write_tokenizer_files(contents.meta, tmp, src.name,
                                    config["max_position_embeddings"])
        if eog:
            config["eos_token_id"] = eog[0] if len(eog) == 1 else eog
        bos = contents.meta.get("tokenizer.ggml.bos_token_id")
        if isinstance(bos, int) and not isinstance(bos, bool):
            config["bos_token_id"] = bos
        _write_config(tmp / "config.json", config)
        names = list(weights)
        for i, name in enumerate(names):
            check_stop()
            mx.eval(weights[name])
            report(0.45 + 0.4 * (i + 1) / len(names), f"Converting {name}")
        contents.arrays.clear()
        report(0.85, "Writing model.safetensors")
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        check_stop()
        report(0.97, "Checking the new folder")
        validate_mlx_folder(tmp)
    log.info("converted %s to %s in %.1f s", src, dest, time.monotonic() - started)
    report(1.0, f"Converted to {dest}")
    return dest


def _write_config(path: Path, config: dict[str, Any]) -> None:
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
