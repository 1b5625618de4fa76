"""The Monitor pane over a real engine host, and the memory guardrails."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from PySide6.QtWidgets import QMessageBox

from macllm_app.core.hardware.monitor import ENGINE_HOST, MonitorSample
from macllm_app.ui.guardrails import JOB_ADVICE, PRESSURE_ADVICE
from tests.support.gui_helpers import send_and_wait, set_max_tokens, wait_loaded

pytestmark = [pytest.mark.gui, pytest.mark.llamacpp]

MB = 1024**2


def _samples_until(qtbot: Any, window: Any, wanted: Any, timeout: int = 60_000) -> MonitorSample:
    """The first sample (from now on) for which `wanted(sample)` holds."""
    found: list[MonitorSample] = []

    def check(sample: MonitorSample) -> None:
        if not found and wanted(sample):
            found.append(sample)

    window.monitor.sampled.connect(check)
    try:
        qtbot.waitUntil(lambda: bool(found), timeout=timeout)
    finally:
        window.monitor.sampled.disconnect(check)
    return found[0]


def _host_rss(sample: MonitorSample) -> int:
    host = sample.process(ENGINE_HOST)
    return host.rss_bytes if host is not None else 0


def test_the_monitor_follows_the_engine_host_through_load_and_unload(
        qtbot: Any, make_window: Any) -> None:
    window = make_window(load=False)
    window.show_pane("monitor")
    pane = window.panes["monitor"]
    window.monitor.start()
    idle = _samples_until(qtbot, window, lambda s: s.process(ENGINE_HOST) is None)
    assert idle.memory.total_bytes > 0 and idle.process("app") is not None
    window.engine.load()
    wait_loaded(qtbot, window)
    loaded = _samples_until(qtbot, window, lambda s: s.engine is not None
                            and s.engine.engine.weights_bytes > 0)
    assert _host_rss(loaded) > 100 * MB  # the host's memory rose with the model
    weights = loaded.engine.engine.weights_bytes
    assert 50 * MB < weights < 150 * MB  # the default model's tensors (Q4_1, ~90 MB)
    assert loaded.engine.engine.kv_cache_bytes > 0
    with qtbot.waitSignal(window.engine.unloaded, timeout=30_000):
        pane.unload_button.click()
    # and fell without it (the host stays, ready for the next load)
    unloaded = _samples_until(qtbot, window, lambda s: s.engine is None
                              and 0 < _host_rss(s) < _host_rss(loaded) - weights // 2)
    assert list(pane.series["engine"]["weights"].values)[-1] == 0
    # The graphs got the samples: the host's resident memory rose, then fell.
    series = pane.host_resident_mb()
    assert _host_rss(loaded) / MB in series and _host_rss(unloaded) / MB in series
    assert series.index(_host_rss(loaded) / MB) < series.index(_host_rss(unloaded) / MB)
    curve = pane.curves[("resident", "Engine host")]
    assert len(curve.getData()[0]) == len(series)


def test_speed_points_reach_the_speed_graph(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    wait_loaded(qtbot, window)
    window.show_pane("monitor")
    pane = window.panes["monitor"]
    window.show_pane("chat")
    set_max_tokens(window.chat, 8)
    send_and_wait(qtbot, window.chat, "Say hello.")
    decode = list(pane.series["speed"]["decode"].values)
    prefill = list(pane.series["speed"]["prefill"].values)
    assert len(decode) == len(prefill) == 1 and decode[0] > 0 and prefill[0] > 0
    window.show_pane("monitor")
    assert ("speed", "decode") in pane.curves


def _padded(default_model: Path, folder: Path) -> Path:
    """The default model with a sparse tail: the same tensors (llama.cpp runs it as it
    runs the original), but a file size twice this machine's memory, so the library's
    estimate says it won't fit."""
    path = folder / "Padded-SmolLM2.gguf"
    shutil.copyfile(default_model, path)
    with path.open("r+b") as handle:
        handle.truncate(2 * psutil.virtual_memory().total)
    return path


def test_a_model_that_wont_fit_loads_only_with_the_users_say(
        qtbot: Any, make_window: Any, default_model: Path, tmp_path: Path) -> None:
    padded = _padded(default_model, tmp_path)
    window = make_window(load=False)
    guard = window.guardrails
    with qtbot.waitSignal(window.engine.fit_refused, timeout=30_000) as refused:
        window.load_model(str(padded))
    why = refused.args[0]
    assert why.startswith("Padded-SmolLM2.gguf needs about ") and "Try a smaller" in why
    assert "available" in why
    qtbot.waitUntil(lambda: guard.question is not None and guard.question.isVisible())
    with qtbot.waitSignal(window.engine.load_failed, timeout=10_000):
        guard.question.button(QMessageBox.StandardButton.Cancel).click()
    assert window.engine.model is None and not window.engine.is_loading()

    with qtbot.waitSignal(window.engine.fit_refused, timeout=30_000):
        window.load_model(str(padded))
    qtbot.waitUntil(lambda: guard.question is not None)
    anyway = next(b for b in guard.question.buttons() if b.text() == "Load Anyway")
    with qtbot.waitSignal(window.engine.loaded, timeout=60_000):
        anyway.click()
    assert window.engine.model is not None and window.engine.model.name == padded.stem


def test_a_chat_waiting_for_a_refused_model_is_told_why(
        qtbot: Any, make_window: Any, default_model: Path, tmp_path: Path) -> None:
    window = make_window(load=False)
    window.settings.engine.model_path = str(_padded(default_model, tmp_path))
    pane = window.chat
    with qtbot.waitSignal(window.engine.fit_refused, timeout=30_000):
        pane.send("Hello?")
    assert pane.is_streaming()  # the turn waits for the user's say
    qtbot.waitUntil(lambda: window.guardrails.question is not None)
    with qtbot.waitSignal(pane.streaming_changed, timeout=10_000):
        window.guardrails.question.button(QMessageBox.StandardButton.Cancel).click()
    assert pane.view.notice.text().startswith("The model could not be loaded: Padded-SmolLM2")
    assert pane.composer.text() == "Hello?", "nothing was saved: the words go back"


def test_rising_pressure_while_a_reply_streams_is_explained_in_the_chat(
        qtbot: Any, make_window: Any) -> None:
    window = make_window()
    wait_loaded(qtbot, window)
    pane = window.chat
    set_max_tokens(pane, 200)
    sample = _samples_until(qtbot, window, lambda s: True, timeout=20_000)
    with qtbot.waitSignal(pane.token_received, timeout=60_000):
        pane.send("Write a long story about a lighthouse.")
    with qtbot.waitSignal(window.monitor.pressure_rose) as rose:
        window.monitor._on_sample(replace(sample, pressure="warning"))  # as the OS reports it
    assert rose.args == ["warning"]
    assert pane.view.notice.text() == PRESSURE_ADVICE["warning"]
    window.monitor._on_sample(replace(sample, pressure="warning"))
    with qtbot.waitSignal(window.monitor.pressure_rose) as worse:
        window.monitor._on_sample(replace(sample, pressure="critical"))
    assert worse.args == ["critical"]
    pane.stop()
    qtbot.waitUntil(lambda: not pane.is_streaming(), timeout=30_000)


@pytest.mark.parametrize(("pane_id", "strip_name"), [("quantize", "strip"),
                                                      ("finetune", "train_strip")])
def test_rising_pressure_warns_on_a_running_jobs_strip_in_any_pane(
        qtbot: Any, make_window: Any, pane_id: str, strip_name: str) -> None:
    window = make_window(load=False)
    window.show_pane(pane_id)
    strip = getattr(window.panes[pane_id], strip_name)
    strip.start("Working")
    assert strip.isVisible() and not strip.warning.isVisible()
    window.monitor.pressure_rose.emit("critical")  # as the monitor does when it rises
    assert strip.warning.isVisible()
    assert strip.warning.text() == JOB_ADVICE["critical"]
