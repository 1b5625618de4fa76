"""Measured quality, kept with each variant's provenance (the profile's quality.json,
written to a temporary file and renamed)."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from macllm_app.core import paths

FILE_NAME = "quality.json"


def results_path() -> Path:
    return paths.data_dir() / FILE_NAME


def load_results() -> list[dict[str, Any]]:
    try:
        data = json.loads(results_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


def record(report: dict[str, Any], provenance: dict[str, str]) -> dict[str, Any]:
    """Add a measurement (replacing an older one of the same model, base and length)."""
    row = {**report, "provenance": provenance, "measured_at": datetime.now(UTC).isoformat()}
    rows = [r for r in load_results()
            if (r.get("model"), r.get("base"), r.get("chunks")) !=
            (row["model"], row["base"], row["chunks"])]
    rows.append(row)
    path = results_path()
    fd, tmp = tempfile.mkstemp(prefix=".quality-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return row


def results_for(base: str) -> list[dict[str, Any]]:
    """Every measurement made against `base`, best first (lowest KL divergence)."""
    rows = [r for r in load_results() if r.get("base") == base]
    return sorted(rows, key=lambda r: r.get("kld_mean") or 0.0)
