"""The Qt binding must not leak or drop references per call.

PySide6 6.12.0 on Python 3.11 drops a reference to None (and True/False) on every
void-returning call; a long chat then aborts the app with "deallocating None".
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QLabel

pytestmark = pytest.mark.gui


class _Emitter(QObject):
    text = Signal(str)


def test_qt_calls_keep_none_and_bool_refcounts(qtbot: Any) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    emitter = _Emitter()
    emitter.text.connect(label.setText)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(2000):
        label.setText("x")
        label.update()
        emitter.text.emit("y")
        QApplication.processEvents()
    assert sys.getrefcount(None) > none_before - 100
    assert sys.getrefcount(True) > true_before - 100
    assert label.text() == "y"
