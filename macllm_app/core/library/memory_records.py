"""Memory estimates for library models, and measured peaks recorded next to the catalogue."""

from __future__ import annotations

from pathlib import Path

from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.formats.metadata import ModelMetadata
from macllm_app.core.hardware.fit import FitEstimate, estimate, shape_of
from macllm_app.core.library.catalogue import Catalogue, MemoryMeasurement


def _metadata(model_path: str, cat: Catalogue) -> ModelMetadata:
    entry = cat.find_path(Path(model_path))
    return entry.model_metadata() if entry else inspect_model(Path(model_path))


def estimate_for(model_path: str, n_ctx: int, engine: str = "llama.cpp") -> FitEstimate:
    return estimate(shape_of(_metadata(model_path, Catalogue())), n_ctx, engine)


def record_measured_peak(model_path: str, engine: str, n_ctx: int,
                         peak_bytes: int) -> MemoryMeasurement:
    """Store a real load's peak RSS with the estimate it is compared to (error = .error)."""
    cat = Catalogue()
    est = estimate(shape_of(_metadata(model_path, cat)), n_ctx, engine)
    return cat.record_measurement(model_path, engine, n_ctx, peak_bytes, est.expected_bytes)
