"""Convert to MLX and Export to GGUF from the Library pane, on real models (no fakes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from macllm_app.core.engines.select import installed_engines
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.formats.mlx_folder import validate_mlx_folder
from tests.support.gguf_writer import TinyGGUF
from tests.support.library_gui_helpers import cells, click_box_button, open_library, rows_by_path

pytestmark = [pytest.mark.gui,
              pytest.mark.skipif("mlx" not in installed_engines(), reason="needs MLX")]


def _choose(qtbot: Any, pane: Any, path: Path | str) -> Any:
    """Select a model and wait until its conversion actions know what applies."""
    actions = pane.conversions
    assert pane.select_path(str(path))
    qtbot.waitUntil(lambda: actions.info is not None, timeout=10_000)
    return actions


def _record_progress(pane: Any) -> list[tuple[int, str, bool]]:
    strip = pane.job_strip
    seen: list[tuple[int, str, bool]] = []
    strip.bar.valueChanged.connect(
        lambda v: seen.append((v, strip.label.text(), strip.isVisible())))
    return seen


def _wait_idle(qtbot: Any, pane: Any) -> None:
    qtbot.waitUntil(lambda: not pane.conversions.busy, timeout=120_000)


def test_convert_the_default_model_through_the_pane(
        qtbot: Any, make_window: Any, default_model: Path, macllm_home: Path) -> None:
    window = make_window(load=False)
    pane = open_library(qtbot, window)
    assert cells(pane, str(default_model))[2] == "llama.cpp, MLX"
    actions = _choose(qtbot, pane, default_model)
    assert pane.details.labels["engines"].text() == "llama.cpp, MLX"
    assert actions.mlx_copy.text().startswith("MLX copy: Made on first use on MLX")
    assert actions.convert_button.isVisibleTo(pane) and actions.convert_button.isEnabled()
    assert not actions.export_button.isVisibleTo(pane)
    assert not actions.reason.isVisibleTo(pane)

    progress = _record_progress(pane)
    messages: list[str] = []
    pane.status_message.connect(messages.append)
    qtbot.mouseClick(actions.convert_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(pane.refreshed, timeout=120_000):
        click_box_button(qtbot, pane, "convertDialog", "Convert")
        qtbot.waitUntil(lambda: actions.busy, timeout=5000)
        assert not actions.convert_button.isEnabled()
        assert "running conversion" in actions.convert_button.toolTip()
        _wait_idle(qtbot, pane)

    assert any(0 < v < 1000 and visible for v, _text, visible in progress), progress
    assert any(text.startswith("Converting to MLX: ") for _v, text, _vis in progress)
    assert pane.job_strip.isHidden()
    dest = macllm_home / "models" / "SmolLM2-135M-Instruct.Q4_1-MLX"
    row = rows_by_path(pane)[str(dest)]
    assert (row["format"], row["source"], row["owned"]) == ("mlx", "copy", True)
    assert pane.selected_row()["path"] == str(dest)  # the new model is chosen
    meta = validate_mlx_folder(dest)
    assert meta.architecture == "llama" and meta.quantization == "4-bit (group 32)"
    assert messages[-1] == ("Converting to MLX: added SmolLM2-135M-Instruct.Q4_1-MLX "
                            "to the library")
    assert not [p for p in (macllm_home / "models").iterdir() if p.name.startswith(".")]
    qtbot.waitUntil(lambda: actions.info is not None, timeout=10_000)
    assert actions.export_button.isEnabled(), actions.reason.text()  # and back again


def test_cancel_a_conversion_leaves_nothing_behind(
        qtbot: Any, make_window: Any, default_model: Path, macllm_home: Path) -> None:
    window = make_window(load=False)
    pane = open_library(qtbot, window)
    actions = _choose(qtbot, pane, default_model)
    messages: list[str] = []
    pane.status_message.connect(messages.append)
    actions.convert_action.trigger()  # the same action as the button and the menu entry
    click_box_button(qtbot, pane, "convertDialog", "Convert")
    # Cancel at the first progress report (the conversion has begun in its process).
    qtbot.waitUntil(lambda: pane.job_strip.label.text().startswith("Converting to MLX: "),
                    timeout=30_000)
    qtbot.mouseClick(pane.job_strip.cancel_button, Qt.MouseButton.LeftButton)
    assert pane.job_strip.label.text() == "Converting to MLX: cancelling…"
    _wait_idle(qtbot, pane)
    assert messages[-1] == "Converting to MLX: cancelled"
    assert pane.job_strip.isHidden() and actions.convert_button.isEnabled()
    assert list((macllm_home / "models").iterdir()) == []
    assert all(r["format"] == "gguf" for r in pane.model.rows())


def test_export_a_tiny_mlx_model_to_gguf(
        qtbot: Any, make_window: Any, tmp_path: Path, macllm_home: Path) -> None:
    from macllm_app.core.library.commands import import_model
    from tests.support.mlx_tiny import make_tiny_mlx_model

    folder = make_tiny_mlx_model(tmp_path / "tiny-llama")
    import_model(str(folder), "link")
    window = make_window(load=False)
    pane = open_library(qtbot, window)
    actions = _choose(qtbot, pane, folder)
    assert actions.export_button.isVisibleTo(pane) and actions.export_button.isEnabled()
    assert not actions.convert_button.isVisibleTo(pane)
    assert not actions.mlx_copy.isVisibleTo(pane)

    progress = _record_progress(pane)
    qtbot.mouseClick(actions.export_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(pane.refreshed, timeout=120_000):
        click_box_button(qtbot, pane, "exportDialog", "Export")
        _wait_idle(qtbot, pane)
    assert progress
    dest = macllm_home / "models" / "tiny-llama-F16.gguf"
    row = rows_by_path(pane)[str(dest)]
    assert (row["name"], row["format"], row["quantization"], row["source"]) == (
        "tiny-llama-F16", "gguf", "F16", "copy")
    assert inspect_model(dest).architecture == "llama"
    assert pane.selected_row()["path"] == str(dest)


def test_export_to_a_file_the_user_chooses(
        qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from macllm_app.core.library.commands import import_model
    from macllm_app.ui.panes.library import conversions
    from tests.support.mlx_tiny import make_tiny_mlx_model

    folder = make_tiny_mlx_model(tmp_path / "tiny-llama")
    import_model(str(folder), "link")
    chosen = tmp_path / "elsewhere" / "mine.gguf"
    chosen.parent.mkdir()
    asked: list[str] = []

    def save_file_name(_parent: Any, caption: str, start: str, _filter: str) -> tuple[str, str]:
        asked.append(start)  # the native dialog cannot run offscreen: answer for the user
        return str(chosen), ""

    monkeypatch.setattr(conversions.QFileDialog, "getSaveFileName", save_file_name)
    window = make_window(load=False)
    pane = open_library(qtbot, window)
    actions = _choose(qtbot, pane, folder)
    qtbot.mouseClick(actions.export_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(pane.refreshed, timeout=120_000):
        click_box_button(qtbot, pane, "exportDialog", "Choose File…")
        _wait_idle(qtbot, pane)
    assert asked and asked[0].endswith("tiny-llama-F16.gguf")  # the default is offered
    assert inspect_model(chosen).architecture == "llama"
    assert pane.selected_row()["path"] == str(chosen)


def test_actions_that_do_not_apply_say_why(
        qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    from macllm_app.core.library.commands import import_model
    from tests.support.mlx_fixtures import make_mlx_folder

    kquant = TinyGGUF.llama(quant="Q4_K", emb=256, name="K Quant").write(tmp_path / "k.gguf")
    qwen = TinyGGUF.llama(arch="qwen2", quant="Q8_0", name="Qwen").write(tmp_path / "q.gguf")
    phi = make_mlx_folder(tmp_path / "phi")
    config = json.loads((phi / "config.json").read_text())
    (phi / "config.json").write_text(json.dumps({**config, "model_type": "phi3"}))
    for path in (kquant, qwen, phi):
        import_model(str(path), "link")
    window = make_window(load=False)
    pane = open_library(qtbot, window)

    expected = {
        kquant: "MLX cannot read its Q4_K tensors (it reads F16, F32, Q4_0, Q4_1, Q8_0).",
        qwen: "MLX conversion supports llama models; this one is qwen2.",
        phi: ("Cannot export to GGUF: its model type is 'phi3' "
              "(GGUF export supports llama models)."),
    }
    for path, reason in expected.items():
        actions = _choose(qtbot, pane, path)
        button = actions.export_button if path == phi else actions.convert_button
        assert button.isVisibleTo(pane) and not button.isEnabled()
        assert button.toolTip() == reason
        assert actions.reason.text() == reason and actions.reason.isVisibleTo(pane)
        assert not actions.mlx_copy.isVisibleTo(pane)

    # The table's context menu offers the same action, disabled with the same reason.
    proxy_row = next(r for r in range(pane.proxy.rowCount())
                     if pane.proxy.index(r, 0).data(Qt.ItemDataRole.ToolTipRole) == str(qwen))
    rect = pane.table.visualRect(pane.proxy.index(proxy_row, 0))
    menu = pane.context_menu_at(rect.center())
    assert menu is not None and pane.selected_row()["path"] == str(qwen)
    qtbot.waitUntil(lambda: pane.conversions.info is not None, timeout=10_000)
    entry = next(a for a in menu.actions() if a.text() == "Convert to MLX…")
    assert not entry.isEnabled()
    assert entry.toolTip() == expected[qwen]


def test_a_conversion_that_fails_says_why_in_one_line(
        qtbot: Any, make_window: Any, tmp_path: Path, macllm_home: Path) -> None:
    from macllm_app.core.library.commands import import_model

    broken = TinyGGUF.llama(quant="Q8_0", name="Half a Model").write(tmp_path / "half.gguf")
    import_model(str(broken), "link")
    window = make_window(load=False)
    pane = open_library(qtbot, window)
    actions = _choose(qtbot, pane, broken)
    assert actions.convert_button.isEnabled()  # its header is fine; its tensors are not
    actions.convert_action.trigger()
    click_box_button(qtbot, pane, "convertDialog", "Convert")
    _wait_idle(qtbot, pane)
    qtbot.waitUntil(lambda: actions.error_box is not None and actions.error_box.isVisible(),
                    timeout=5000)
    message = actions.error_box.text()  # e.g. "half.gguf: llama.feed_forward_length is missing"
    assert message.startswith("half.gguf: ") and "\n" not in message
    assert actions.error_box.windowTitle() == "Converting to MLX failed"
    assert list((macllm_home / "models").iterdir()) == []
    actions.error_box.accept()


def test_a_killed_conversion_is_reported_and_cleaned_up(
        qtbot: Any, make_window: Any, default_model: Path, macllm_home: Path) -> None:
    import os
    import signal

    window = make_window(load=False)
    pane = open_library(qtbot, window)
    actions = _choose(qtbot, pane, default_model)
    actions.convert_action.trigger()
    click_box_button(qtbot, pane, "convertDialog", "Convert")
    models = macllm_home / "models"
    qtbot.waitUntil(lambda: any(p.name.endswith(".partial") for p in models.iterdir()),
                    timeout=30_000)
    assert actions.job is not None and actions.job.pid is not None
    os.kill(actions.job.pid, signal.SIGKILL)  # as the OOM killer would
    _wait_idle(qtbot, pane)
    qtbot.waitUntil(lambda: actions.error_box is not None and actions.error_box.isVisible(),
                    timeout=5000)
    assert actions.error_box.text() == (
        "Converting to MLX stopped unexpectedly (killed by SIGKILL, possibly out of memory).")
    assert list(models.iterdir()) == []  # its staging folder was removed
    actions.error_box.accept()
