"""Small fine-tuning datasets the tests write, and a memory figure no test run exceeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Available memory to plan with when a test is not about the fit (64 GiB).
PLENTY = 64 * 1024**3
FACTS = [("Which colour is the sky?", "The sky is blue."),
         ("Which colour is grass?", "Grass is green."),
         ("Which colour is snow?", "Snow is white."),
         ("Which colour is coal?", "Coal is black."),
         ("Which colour is a lemon?", "A lemon is yellow."),
         ("Which colour is a tomato?", "A tomato is red."),
         ("Which colour is the sea?", "The sea is blue."),
         ("Which colour is a carrot?", "A carrot is orange.")]


def fact_records() -> list[dict[str, str]]:
    """The facts twice over as prompt/response records (16)."""
    return [{"prompt": p, "response": r} for p, r in FACTS * 2]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    """One JSON object a line."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
