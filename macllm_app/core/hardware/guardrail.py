"""Will a load fit now? The library's estimate against available memory (and, on a Mac,
the GPU's working set), with numbers and what to try instead."""

from __future__ import annotations

from macllm_app.core.hardware.fit import FitEstimate
from macllm_app.core.units import human_size


def fit_problem(estimate: FitEstimate, name: str, gpu_limit_bytes: int | None = None) -> str:
    """'' when the model fits, else one line: what it needs, what there is, what to try."""
    needed = estimate.expected_bytes
    over_ram = estimate.verdict == "wont_fit" or needed > estimate.available_ram_bytes
    over_gpu = gpu_limit_bytes is not None and 0 < gpu_limit_bytes < needed
    if not over_ram and not over_gpu:
        return ""
    if over_ram:
        have = (f"{human_size(estimate.available_ram_bytes)} of "
                f"{human_size(estimate.total_ram_bytes)} is available")
    else:
        have = f"the GPU may use about {human_size(gpu_limit_bytes)}"
    tries = []
    if estimate.recommended_quant:
        tries.append(f"a smaller quantization ({estimate.recommended_quant})")
    else:
        tries.append("a smaller quantization")
    if estimate.kv_cache_bytes > needed // 5:
        tries.append(f"a shorter context (the KV cache alone needs "
                     f"{human_size(estimate.kv_cache_bytes)})")
    else:
        tries.append("a shorter context")
    if over_gpu:
        tries.append("fewer GPU layers")
    return (f"{name} needs about {human_size(needed)} at {estimate.n_ctx:,} tokens on "
            f"{estimate.engine}, and {have}. Try {', '.join(tries[:-1])} or {tries[-1]}.")
