"""Plain-words text for stats, statuses and the context window."""

from __future__ import annotations

from typing import Any

STATUS_TEXT = {
    "streaming": "generating…",
    "interrupted": "interrupted",
    "cancelled": "cancelled",
    "error": "error",
}


def stats_text(stats: dict[str, Any] | None) -> str:
    """'SmolLM2 · llama.cpp · TTFT 0.12 s · 48.1 tok/s · 32 tokens · stop'."""
    if not stats:
        return ""
    parts: list[str] = []
    for key in ("model", "engine"):
        if stats.get(key):
            parts.append(str(stats[key]))
    if stats.get("ttft_s"):
        parts.append(f"TTFT {float(stats['ttft_s']):.2f} s")
    if stats.get("decode_tps"):
        parts.append(f"{float(stats['decode_tps']):.1f} tok/s")
    parts.append(f"{int(stats.get('generated_tokens', 0))} tokens")
    if stats.get("finish_reason"):
        parts.append(str(stats["finish_reason"]))
    return " · ".join(parts)


def context_text(stats: dict[str, Any] | None) -> tuple[str, str]:
    """('N / n_ctx tokens', note about dropped messages or '')."""
    if not stats or not stats.get("n_ctx"):
        return "", ""
    used = int(stats.get("prompt_tokens", 0)) + int(stats.get("generated_tokens", 0))
    label = f"{used:,} / {int(stats['n_ctx']):,} tokens"
    dropped = int(stats.get("dropped_messages", 0))
    note = ""
    if dropped > 0:
        noun = "message was" if dropped == 1 else "messages were"
        note = (f"{dropped} older {noun} left out to fit the context window "
                "(system prompt kept)")
    return label, note
