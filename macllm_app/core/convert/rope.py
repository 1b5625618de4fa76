"""Llama 3.1-style rope scaling and GGUF's `rope_freqs.weight` tensor.

llama.cpp's converter stores the scaling as one divisor per rotary frequency;
mlx-lm wants the parameters (`rope_scaling` with `rope_type: llama3`). The
parameters are recovered by matching the divisors against the few settings
Llama 3.x releases use.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

# (low_freq_factor, high_freq_factor, original_max_position_embeddings) to try;
# every Llama 3.1 / 3.2 / 3.3 release uses (1, 4, 8192).
_CANDIDATES = tuple(itertools.product((1.0, 2.0), (4.0, 2.0, 8.0),
                                      (8192, 4096, 2048, 16384, 32768, 65536, 131072)))


def llama3_rope_factors(head_dim: int, theta: float, scaling: dict[str, Any]) -> np.ndarray:
    """The `rope_freqs.weight` values llama.cpp's converter writes for `scaling`."""
    factor = float(scaling["factor"])
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    old_context = float(scaling.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def llama3_scaling(factors: np.ndarray, head_dim: int, theta: float) -> dict[str, Any] | None:
    """`rope_scaling` for mlx-lm that reproduces `factors`; {} when they scale nothing;
    None when no Llama 3 setting matches."""
    values = np.asarray(factors, dtype=np.float64).reshape(-1)
    if values.shape != (head_dim // 2,) or not np.isfinite(values).all():
        return None
    if np.allclose(values, 1.0):
        return {}
    factor = float(np.float32(values.max()))
    for low, high, old_context in _CANDIDATES:
        scaling = {"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                   "high_freq_factor": high, "original_max_position_embeddings": old_context}
        if np.allclose(llama3_rope_factors(head_dim, theta, scaling), values, rtol=1e-4):
            return scaling
    return None
