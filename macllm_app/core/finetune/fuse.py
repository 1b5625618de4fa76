"""A finished run into a model: fused into an F16 base, and out to GGUF.

Fusing into a quantized base and quantizing again loses most of a LoRA's small
delta (mlx-lm issue #1172), so the base is always dequantized first: the fused
model is float16, and can be quantized afterwards (the Quantize pane).
These are jobs (they need mlx): `FUSE_TARGET`, `EXPORT_GGUF_TARGET`,
`EXPORT_ADAPTER_TARGET`.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from macllm_app.core.convert.staging import check_dest_file, check_dest_folder, staged_folder
from macllm_app.core.errors import UserError
from macllm_app.core.finetune.checkpoints import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from macllm_app.core.finetune.runs import Run, RunStore
from macllm_app.core.progress import span
from macllm_app.core.types import ProgressCallback, StopCheck

FUSE_TARGET = f"{__name__}:fuse_into_library"
EXPORT_GGUF_TARGET = f"{__name__}:export_gguf_into_library"
EXPORT_ADAPTER_TARGET = f"{__name__}:export_llama_adapter_file"
FUSE_TITLE = "Fusing the adapter"


def default_output(run: Run, kind: str) -> Path:
    """Where a run's result goes unless the user says: the profile's models folder,
    named after the base and the run ("fused": a folder; "gguf", "adapter": a file)."""
    from macllm_app.core.paths import models_dir

    base = Path(run.base_model)
    stem = base.stem if base.suffix.lower() == ".gguf" else base.name
    name = f"{stem}-{run.config.get('method', 'lora')}-{run.id}"
    if kind == "fused":
        return models_dir() / f"{name}-fused"
    if kind == "gguf":
        return models_dir() / f"{name}-fused-F16.gguf"
    return models_dir() / f"{name}-llama-adapter.gguf"


def trained_adapter(run: Run) -> Path:
    """The run's adapter folder, or a one-line error when it has none yet."""
    folder = run.adapter_dir
    if not (folder / ADAPTER_WEIGHTS).is_file() or not (folder / ADAPTER_CONFIG).is_file():
        raise UserError(f"Run {run.id} has no saved adapter yet ({run.state}).")
    return folder


def mlx_base_of(run: Run, progress: ProgressCallback | None = None,
                should_stop: StopCheck | None = None) -> Path:
    """The MLX folder the run trained (a GGUF base's MLX copy)."""
    base = Path(run.base_model)
    if base.is_dir():
        return base
    if not base.is_file():
        raise UserError(f"Run {run.id}'s base model {base} is gone.")
    from macllm_app.core.library.mlx_copies import ensure_mlx_copy

    return ensure_mlx_copy(base, progress=progress, should_stop=should_stop)


def fused_model(run: Run) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, config): the base with the run's weights fused in, in float16."""
    import mlx.core as mx
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import dequantize_model, load

    adapter = trained_adapter(run)
    base = mlx_base_of(run)
    loaded = cast(tuple[Any, Any, dict[str, Any]],
                  load(str(base), return_config=True,
                       tokenizer_config={"trust_remote_code": False}))
    model, tokenizer, config = loaded
    kind = run.config.get("method", "lora")
    if kind == "full":
        model = dequantize_model(model)
        model.load_weights(str(adapter / ADAPTER_WEIGHTS), strict=False)
    else:
        from mlx_lm.tuner.utils import load_adapters

        model = load_adapters(model, str(adapter))
        fused = [(name, module.fuse(dequantize=True)) for name, module in model.named_modules()
                 if hasattr(module, "fuse")]
        if fused:
            model.update_modules(tree_unflatten(fused))
        model = dequantize_model(model)
    model.set_dtype(mx.float16)
    _check_finite(model, run)
    config.pop("quantization", None)
    config.pop("quantization_config", None)
    config["torch_dtype"] = "float16"
    return model, tokenizer, config


def _check_finite(model: Any, run: Run) -> None:
    """Refuse a fused model whose weights overflowed float16 (an adapter trained with too
    high a learning rate): it would answer NaN."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    weights = cast(list[tuple[str, Any]], tree_flatten(model.parameters()))
    bad = [name for name, w in weights if not bool(mx.all(mx.isfinite(w)).item())]
    if bad:
        raise UserError(f"Run {run.id} fused into float16 overflows {len(bad)} weight "
                        f"tensor(s), first {bad[0]}: its adapter's values are too large "
                        "(a learning rate too high?); train again with a lower one.")


def fuse_run(run: Run, dest: Path, progress: ProgressCallback | None = None) -> Path:
    """Write the fused float16 model as the new MLX folder `dest`."""
    from mlx_lm.utils import save

    report = progress or (lambda _f, _m: None)
    check_dest_folder(dest)
    report(0.1, "Loading the base and the adapter")
    model, tokenizer, config = fused_model(run)
    report(0.6, "Writing the fused model")
    with staged_folder(dest) as tmp, contextlib.redirect_stdout(sys.stderr):
        save(tmp, mlx_base_of(run), model, tokenizer, config, donate_model=False)
    return dest


def _provenance(run: Run, kind: str) -> dict[str, str]:
    return {"fine_tuned_from": run.base_model, "finetune_run": run.id,
            "finetune_method": str(run.config.get("method", "")), "made": kind,
            "made_at": datetime.now(UTC).isoformat()}


def fuse_into_library(run_id: str, dest: str, db_path: str | None = None,
                      progress: ProgressCallback | None = None) -> dict[str, Any]:
    """The job: fuse run `run_id` into the MLX folder `dest` and add it to the library."""
    from macllm_app.core.library.conversions import add_to_library

    run = RunStore(Path(db_path) if db_path else None).find(run_id)
    made = fuse_run(run, Path(dest), progress)
    return add_to_library(made, _provenance(run, "fused (float16)"))


def export_gguf_into_library(run_id: str, dest: str, db_path: str | None = None,
                             progress: ProgressCallback | None = None,
                             should_stop: StopCheck | None = None) -> dict[str, Any]:
    """The job: the fused model as the F16 GGUF file `dest`, added to the library."""
    import tempfile

    from macllm_app.core.convert.mlx_to_gguf import export_mlx_to_gguf
    from macllm_app.core.library.conversions import add_to_library

    run = RunStore(Path(db_path) if db_path else None).find(run_id)
    target = Path(dest)
    check_dest_file(target)
    report = progress or (lambda _f, _m: None)
    with tempfile.TemporaryDirectory(prefix=".fused-", dir=target.parent) as scratch:
        fused = fuse_run(run, Path(scratch) / "fused", span(report, 0.0, 0.5))
        export_mlx_to_gguf(fused, target, progress=span(report, 0.5, 1.0),
                           should_stop=should_stop)
    return add_to_library(target, _provenance(run, "fused and exported to GGUF (F16)"))


def export_llama_adapter_file(run_id: str, dest: str, db_path: str | None = None,
                              progress: ProgressCallback | None = None) -> str:
    """The job: the run's LoRA adapter as a llama.cpp adapter GGUF file `dest`."""
    from macllm_app.core.finetune.llama_adapter import export_llama_adapter

    run = RunStore(Path(db_path) if db_path else None).find(run_id)
    report = progress or (lambda _f, _m: None)
    report(0.0, "Writing the llama.cpp adapter")
    base = Path(run.base_model)
    made = export_llama_adapter(trained_adapter(run), base if base.is_file() else
                                mlx_base_of(run), Path(dest))
    report(1.0, "Wrote the llama.cpp adapter")
    return str(made)
