"""The Library pane on real files: table columns, filter, details, drops, Open With, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QFileOpenEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.support.gguf_writer import TinyGGUF
from tests.support.library_gui_helpers import (
    answer_next_modal,
    cells,
    click_box_button,
    open_library,
    refresh,
    rows_by_path,
)

pytestmark = pytest.mark.gui


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return TinyGGUF.llama(quant="Q8_0", name="Tiny Library Model").write(
        tmp_path / "tiny-Q8_0.gguf")


def _mime(*paths: Path | str) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([p if isinstance(p, QUrl) else QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def test_table_lists_the_default_and_an_imported_model(
        qtbot: Any, make_window: Any, tiny: Path, default_model: Path) -> None:
    from macllm_app.core.library.commands import import_model

    import_model(str(tiny), "link")
    window = make_window(load=False)
    pane = open_library(qtbot, window)
    from macllm_app.core.engines.select import installed_engines

    engines = "llama.cpp, MLX" if "mlx" in installed_engines() else "llama.cpp"
    assert cells(pane, str(default_model)) == [
        "SmolLM2-135M-Instruct (Q4_1)", "GGUF", engines, "93.8 MB", "Q4_1", "8,192",
        "Fits", "bundled"]
    name, fmt, engines, _size, quant, ctx, fit, source = cells(pane, str(tiny))
    assert (name, fmt, quant, ctx, source) == ("Tiny Library Model", "GGUF", "Q8_0", "2,048",
                                               "linked")
    assert "llama.cpp" in engines and fit in {"Fits", "Tight", "Won't fit"}

    pane.filter.setText("smollm")
    assert pane.proxy.rowCount() == 1
    pane.filter.setText("TINY LIBRARY")
    assert pane.proxy.rowCount() == 1
    pane.filter.setText("no such model")
    assert pane.proxy.rowCount() == 0
    pane.filter.clear()
    assert pane.proxy.rowCount() == 2

    assert pane.select_path(str(default_model))
    qtbot.waitUntil(lambda: pane.details.details is not None, timeout=10_000)
    assert pane.details.labels["quantization"].text() == "Q4_1"
    assert pane.details.labels["architecture"].text() == "llama"
    assert pane.details.fit.text().startswith("Fits: about ")
    assert "Not measured yet" in pane.details.measured.text()
    assert pane.delete_button.isHidden() and pane.load_button.isEnabled()


# PySide6 marks QDragEnterEvent's only constructor (QPoint) deprecated.
@pytest.mark.filterwarnings("ignore:Function.*QDragEnterEvent:DeprecationWarning")
def test_drop_imports_the_valid_file_and_refuses_the_corrupt_one(
        qtbot: Any, make_window: Any, tiny: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 60)
    window = make_window(load=False)
    pane = open_library(qtbot, window)

    web_mime, files_mime = _mime(QUrl("https://example.com/x.gguf")), _mime(tiny, bad)
    web = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, web_mime,
                          Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, web)
    assert not web.isAccepted()
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, files_mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()

    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, files_mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()
    with qtbot.waitSignal(pane.refreshed, timeout=20_000):
        click_box_button(qtbot, window, "importModeDialog", "Link in Place")
    assert len(pane.import_errors) == 1
    assert "broken.gguf" in pane.import_errors[0]
    errors = window.findChild(QMessageBox, "importErrors")
    assert errors is not None and errors.text() == pane.import_errors[0]
    rows = rows_by_path(pane)
    assert rows[str(tiny)]["source"] == "link"
    assert str(bad) not in rows
    assert window.stack.currentWidget() is pane


def test_file_open_event_imports_a_copy_that_can_be_deleted(
        qtbot: Any, make_window: Any, tiny: Path, macllm_home: Path,
        default_model: Path) -> None:
    from macllm_app.ui.app import install_file_open

    window = make_window(load=False)
    pane = open_library(qtbot, window)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    file_open = install_file_open(app, window)
    try:
        QApplication.postEvent(app, QFileOpenEvent(str(tiny)))
        with qtbot.waitSignal(pane.refreshed, timeout=20_000):
            click_box_button(qtbot, window, "importModeDialog", "Copy")
    finally:
        app.removeEventFilter(file_open)
    copies = [r for r in pane.model.rows() if r["source"] == "copy"]
    assert len(copies) == 1 and copies[0]["owned"] and copies[0]["source_label"] == "ours"
    copy_path = Path(copies[0]["path"])
    assert copy_path.is_relative_to(macllm_home) and copy_path.read_bytes() == tiny.read_bytes()

    assert pane.select_path(str(default_model))
    assert pane.delete_button.isHidden()
    assert pane.select_path(str(copy_path))
    assert not pane.delete_button.isHidden()
    answer_next_modal(QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(pane.refreshed, timeout=20_000):
        pane.delete_button.click()
    assert not copy_path.exists() and tiny.exists()
    assert str(copy_path) not in rows_by_path(pane)


def test_declining_the_delete_keeps_the_copy(qtbot: Any, make_window: Any, tiny: Path) -> None:
    from macllm_app.core.library.commands import import_model

    copy_path = import_model(str(tiny), "copy")["path"]
    window = make_window(load=False)
    pane = open_library(qtbot, window)
    assert pane.select_path(copy_path)
    answer_next_modal(QMessageBox.StandardButton.No)
    pane.delete_button.click()
    refresh(qtbot, pane)
    assert Path(copy_path).exists() and copy_path in rows_by_path(pane)
