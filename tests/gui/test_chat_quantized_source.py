"""A quantized model beside its source in the chat: the Quantize pane's "Compare with
Source in Chat" loads the variant, and the compare button under its reply answers the
same message with the source model, both replies' stats and models in the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from tests.support.convert_models import requantize
from tests.support.gui_helpers import last_reply, send_and_wait, set_max_tokens, wait_loaded

pytestmark = [pytest.mark.gui, pytest.mark.llamacpp, pytest.mark.slow]


def test_compare_a_quantized_model_with_its_source(qtbot: Any, make_window: Any,
                                                   f16_default_model: Path,
                                                   tmp_path: Path) -> None:
    variant = requantize(f16_default_model, tmp_path / "smollm2-Q8_0.gguf", "Q8_0")
    window = make_window(load=False)
    quantize = window.panes["quantize"]
    quantize.source, quantize.last_output = str(f16_default_model), str(variant)
    quantize._update()
    assert quantize.compare_button.isEnabled()
    quantize.compare_button.click()
    wait_loaded(qtbot, window)
    pane = window.chat
    assert window.engine.config.model_path == str(variant)
    set_max_tokens(pane, 4)
    send_and_wait(qtbot, pane, "Name a colour.")
    quantized = last_reply(pane)
    assert quantized.stats["model"] == "smollm2-Q8_0"

    action = window.action_registry["chat.compare_engines"]
    qtbot.waitUntil(action.isEnabled, timeout=10_000)
    assert action.text() == "Run on the source model"
    button = pane.view.message_widgets()[-1].compare_button
    assert button is not None and button.text() == "Run on the source model"
    with qtbot.waitSignal(pane.streaming_changed, timeout=120_000,
                          check_params_cb=lambda streaming: streaming is False):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    source = last_reply(pane)
    assert source.status == "complete", source.error
    assert source.stats["model"] == "smollm2-f16" and source.stats["compared_with"] == quantized.id
    table = pane.view.message_widgets()[-1].comparison
    assert table is not None
    assert [table.cell(6, c) for c in range(3)] == ["Model", "smollm2-Q8_0", "smollm2-f16"]
    assert [table.cell(0, c) for c in (1, 2)] == ["llama.cpp", "llama.cpp"]
    # The chat's model is still the quantized one.
    send_and_wait(qtbot, pane, "Another.")
    assert last_reply(pane).stats["model"] == "smollm2-Q8_0"
