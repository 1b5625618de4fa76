"""The real `macllm-app` starts offscreen, becomes interactive and reports its memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui


def test_app_starts_and_reports_through_the_probe(tmp_path: Path) -> None:
    probe = tmp_path / "probe.json"
    env = {**os.environ, "MACLLM_HOME": str(tmp_path / "home"),
           "MACLLM_STARTUP_PROBE": str(probe), "QT_QPA_PLATFORM": "offscreen"}
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "macllm_app"], env=env, timeout=120,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(probe.read_text())
    assert started < report["interactive_at"] < time.time()
    assert 20 * 2**20 < report["idle_rss_bytes"] < 2**31
    assert (tmp_path / "home" / "chats.sqlite3").exists()
