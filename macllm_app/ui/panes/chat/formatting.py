"""Plain-words text for stats, statuses and the context window."""

from __future__ import annotations

from typing import Any

from macllm_app.core.types import GenerationStats

STATUS_TEXT = {
    "streaming": "generating…",
    "interrupted": "interrupted",
    "cancelled": "cancelled",
    "error": "error",
}


def stats_text(stored: dict[str, Any] | None) -> str:
    """'SmolLM2 · llama.cpp · TTFT 0.12 s · 48.1 tok/s · 32 tokens · stop'."""
    stats = GenerationStats.from_dict(stored)
    if stats is None:
        return ""
    parts = [part for part in (stats.model, stats.engine) if part]
    if stats.ttft_s:
        parts.append(f"TTFT {stats.ttft_s:.2f} s")
    if stats.decode_tps:
        parts.append(f"{stats.decode_tps:.1f} tok/s")
    parts.append(f"{stats.generated_tokens} tokens")
    if stats.finish_reason:
        parts.append(stats.finish_reason)
    return " · ".join(parts)


def context_text(stored: dict[str, Any] | None) -> tuple[str, str]:
    """('N / n_ctx tokens', note about dropped messages or '')."""
    stats = GenerationStats.from_dict(stored)
    if stats is None or not stats.n_ctx:
        return "", ""
    used = stats.prompt_tokens + stats.generated_tokens
    label = f"{used:,} / {stats.n_ctx:,} tokens"
    note = ""
    if stats.dropped_messages > 0:
        noun = "message was" if stats.dropped_messages == 1 else "messages were"
        note = (f"{stats.dropped_messages} older {noun} left out to fit the context window "
                "(system prompt kept)")
    return label, note
