"""A run's checkpoints: the trained weights, the optimizer's state and the step, each
written whole into a staging folder and renamed, so a killed run keeps its last
complete one and never a half-written one.

    <run>/checkpoints/step-0000050/adapters.safetensors
                                  optimizer.safetensors
                                  state.json          {"step": 50, "trained_tokens": ...}

The adapter folder (`<run>/adapter`, what mlx-lm loads) is replaced the same way.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macllm_app.core.convert.staging import staged_folder
from macllm_app.core.errors import UserError

ADAPTER_WEIGHTS = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
OPTIMIZER_STATE = "optimizer.safetensors"
STATE = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    step: int
    trained_tokens: int

    @property
    def weights(self) -> Path:
        return self.folder / ADAPTER_WEIGHTS

    @property
    def optimizer(self) -> Path:
        return self.folder / OPTIMIZER_STATE


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def list_checkpoints(folder: Path) -> list[Checkpoint]:
    """The complete checkpoints in `folder`, oldest first (staging leftovers skipped)."""
    found = []
    if not folder.is_dir():
        return []
    for entry in folder.iterdir():
        if not entry.name.startswith("step-") or not entry.is_dir():
            continue
        try:
            state = json.loads((entry / STATE).read_text(encoding="utf-8"))
            step, tokens = int(state["step"]), int(state.get("trained_tokens", 0))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (entry / ADAPTER_WEIGHTS).is_file():
            found.append(Checkpoint(entry, step, tokens))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(folder: Path) -> Checkpoint | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def write_checkpoint(folder: Path, step: int, weights: dict[str, Any],
                     optimizer_state: dict[str, Any], state: dict[str, Any]) -> Checkpoint:
    """Write one checkpoint (mlx arrays in `weights` and `optimizer_state`)."""
    import mlx.core as mx

    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / checkpoint_name(step)
    if dest.exists():  # a resumed run that reached the same step: keep the older one
        return Checkpoint(dest, step, int(state.get("trained_tokens", 0)))
    try:
        with staged_folder(dest) as tmp:
            mx.save_safetensors(str(tmp / ADAPTER_WEIGHTS), weights)
            if optimizer_state:
                mx.save_safetensors(str(tmp / OPTIMIZER_STATE), optimizer_state)
            (tmp / STATE).write_text(json.dumps({"step": step, **state}), encoding="utf-8")
    except (OSError, RuntimeError) as exc:
        raise UserError(f"Could not write the checkpoint of step {step} in {folder} "
                        f"({_reason(exc)}); earlier checkpoints are kept.") from None
    return Checkpoint(dest, step, int(state.get("trained_tokens", 0)))


def write_adapter(adapter_dir: Path, weights: dict[str, Any], config: dict[str, Any]) -> None:
    """Replace the run's adapter folder with `weights` and mlx-lm's adapter_config.json;
    the old folder stays until the new one is complete."""
    import mlx.core as mx

    adapter_dir.parent.mkdir(parents=True, exist_ok=True)
    fresh = adapter_dir.with_name(adapter_dir.name + ".new")
    old = adapter_dir.with_name(adapter_dir.name + ".old")
    shutil.rmtree(fresh, ignore_errors=True)
    try:
        with staged_folder(fresh) as tmp:
            mx.save_safetensors(str(tmp / ADAPTER_WEIGHTS), weights)
            (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
        shutil.rmtree(old, ignore_errors=True)
        if adapter_dir.exists():
            adapter_dir.rename(old)
        fresh.rename(adapter_dir)
        shutil.rmtree(old, ignore_errors=True)
    except (OSError, RuntimeError) as exc:
        if old.exists() and not adapter_dir.exists():
            old.rename(adapter_dir)
        raise UserError(f"Could not save the adapter in {adapter_dir} ({_reason(exc)}).") \
            from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
