"""Load into Chat with the real default model: the chat streams, the peak memory is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

from tests.support.gguf_writer import TinyGGUF
from tests.support.gui_helpers import send_and_wait, wait_loaded
from tests.support.library_gui_helpers import open_library

pytestmark = [pytest.mark.gui, pytest.mark.llamacpp]


def test_load_into_chat_streams_and_records_measured_memory(
        qtbot: Any, make_window: Any, default_model: Path) -> None:
    from macllm_app.core.library.catalogue import Catalogue

    window = make_window(load=False)
    pane = open_library(qtbot, window)
    assert pane.select_path(str(default_model))
    assert pane.selected_row()["fit"] == "fits"
    pane.load_button.click()
    assert window.stack.currentWidget() is window.chat
    wait_loaded(qtbot, window)
    assert window.engine.model.path == str(default_model)

    send_and_wait(qtbot, window.chat, "Say hello.")
    reply = window.chat.store.active_path(window.chat.conversation_id)[-1]
    assert reply.role == "assistant" and reply.content.strip()

    measured = Catalogue().measurements(str(default_model))
    assert len(measured) == 1 and measured[0].n_ctx == 2048
    assert measured[0].peak_bytes > 50 << 20 and measured[0].estimate_bytes > 0
    window.show_pane("library")
    pane.details.show_model(str(default_model))
    qtbot.waitUntil(lambda: pane.details.details is not None, timeout=10_000)
    text = pane.details.measured.text()
    assert "peak on llama.cpp at 2,048 tokens" in text and "the estimate was" in text


def test_loading_a_model_that_wont_fit_from_the_library_asks_first(
        qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    from macllm_app.core.library.commands import import_model

    huge = TinyGGUF.llama(quant="Q8_0", name="Huge")
    huge.kv = [kv if kv[0] != "llama.block_count" else (kv[0], kv[1], 400_000)
               for kv in huge.kv]
    path = import_model(str(huge.write(tmp_path / "huge.gguf")), "link")["path"]
    window = make_window(load=False)
    pane = open_library(qtbot, window)
    assert pane.select_path(path)
    assert pane.selected_row()["fit"] == "wont_fit"  # 400,000 layers of KV cache
    with qtbot.waitSignal(window.engine.fit_refused, timeout=20_000):
        pane.load_button.click()  # the library asks nothing itself: the guardrail does
    question = window.guardrails.question
    assert question is not None and "huge.gguf needs about" in question.informativeText()
    with qtbot.waitSignal(window.engine.load_failed, timeout=10_000):
        question.button(QMessageBox.StandardButton.Cancel).click()
    assert window.engine.model is None and not window.engine.is_loading()
