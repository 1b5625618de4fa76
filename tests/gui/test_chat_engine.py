"""The chat pane with the real engine host and the bundled model (no mocked engine)."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt

from tests.support.gui_helpers import last_reply, send_and_wait, set_max_tokens, wait_loaded

pytestmark = [pytest.mark.gui, pytest.mark.llamacpp, pytest.mark.slow]


def test_send_streams_reply_into_view_and_store(qtbot: Any, window: Any) -> None:
    pane = window.chat
    wait_loaded(qtbot, window)
    assert window.status.model_label.text().startswith("SmolLM2")
    assert window.status.device_label.text() == "CPU"
    tokens: list[str] = []
    pane.token_received.connect(tokens.append)
    send_and_wait(qtbot, pane, "Say hello.")
    assert tokens, "no token was streamed"
    reply = last_reply(pane)
    assert reply.status == "complete"
    assert reply.content.strip()
    assert reply.content == "".join(tokens)
    assert reply.stats and reply.stats["generated_tokens"] > 0
    widgets = pane.view.message_widgets()
    assert [w.role for w in widgets] == ["user", "assistant"]
    assert widgets[-1].text == reply.content
    assert "tok/s" in widgets[-1].footer.text()
    assert pane.context_label.text().endswith("/ 2,048 tokens")
    assert pane.sidebar.model.rowCount() == 1
    assert pane.title.text() == "Say hello."
    assert window.windowTitle() == "Say hello. — MacLLM"
    assert window.status.speed_label.text().endswith(" tok/s")


def test_stop_mid_stream_stores_cancelled_reply(qtbot: Any, window: Any) -> None:
    pane = window.chat
    set_max_tokens(pane, 400)
    wait_loaded(qtbot, window)
    with qtbot.waitSignal(pane.token_received, timeout=60_000):
        pane.send("Write a very long story about a dragon who learns to cook.")
    assert window.action_registry["chat.stop"].isEnabled()
    with qtbot.waitSignal(pane.streaming_changed, timeout=30_000):
        qtbot.keyClick(pane.composer.edit, Qt.Key.Key_Escape)
    reply = last_reply(pane)
    assert reply.status == "cancelled"
    assert pane.view.message_widgets()[-1].footer.text().startswith("CANCELLED")
    assert window.engine.is_ready(), "a cooperative stop keeps the model loaded"


def test_regenerate_adds_sibling_and_switcher(qtbot: Any, window: Any) -> None:
    pane = window.chat
    send_and_wait(qtbot, pane, "Name a colour.")
    first = last_reply(pane)
    with qtbot.waitSignal(pane.streaming_changed, timeout=180_000,
                          check_params_cb=lambda streaming: streaming is False):
        window.action_registry["chat.regenerate"].trigger()
    second = last_reply(pane)
    assert second.id != first.id
    assert [m.id for m in pane.store.siblings(second.id)] == [first.id, second.id]
    widget = pane.view.message_widgets()[-1]
    assert widget.branch_label is not None and widget.branch_label.text() == "2/2"
    qtbot.mouseClick(widget.findChild(type(widget.copy_button), "branchPrevious"),
                     Qt.MouseButton.LeftButton)
    assert last_reply(pane).id == first.id
    assert pane.view.message_widgets()[-1].branch_label.text() == "1/2"


def test_edit_and_resend_keeps_old_branch(qtbot: Any, window: Any) -> None:
    pane = window.chat
    send_and_wait(qtbot, pane, "Hi there.")
    old_user = pane.store.active_path(pane.conversation_id)[0]
    user_widget = pane.view.message_widgets()[0]
    edit_button = user_widget.findChild(type(user_widget.copy_button), "editMessage")
    qtbot.mouseClick(edit_button, Qt.MouseButton.LeftButton)
    assert pane.composer.editing_id == old_user.id
    assert pane.composer.text() == "Hi there."
    pane.composer.edit.setPlainText("Hello, who are you?")
    with qtbot.waitSignal(pane.streaming_changed, timeout=180_000,
                          check_params_cb=lambda streaming: streaming is False):
        qtbot.keyClick(pane.composer.edit, Qt.Key.Key_Return)
        shown = pane.view.message_widgets()
        assert [(w.role, w.message) for w in shown] == [("user", None), ("assistant", None)]
        assert shown[0].text == "Hello, who are you?", "the replaced branch is hidden"
    path = pane.store.active_path(pane.conversation_id)
    assert path[0].content == "Hello, who are you?"
    assert path[-1].role == "assistant" and path[-1].status == "complete"
    versions = pane.store.siblings(path[0].id)
    assert [m.content for m in versions] == ["Hi there.", "Hello, who are you?"]
    assert pane.view.message_widgets()[0].branch_label.text() == "2/2"
    pane.switch_branch(old_user.id)
    assert pane.store.active_path(pane.conversation_id)[0].content == "Hi there."
    assert len(pane.store.active_path(pane.conversation_id)) == 2


def test_killed_host_reports_crash_keeps_chat_and_recovers(qtbot: Any, window: Any) -> None:
    pane = window.chat
    set_max_tokens(pane, 400)
    wait_loaded(qtbot, window)
    first_pid = window.engine.host.pid
    with qtbot.waitSignal(pane.token_received, timeout=60_000):
        pane.send("Write a very long story about a lighthouse keeper.")
    with qtbot.waitSignal(pane.streaming_changed, timeout=30_000):
        window.engine.host.kill()
    assert pane.view.notice.isVisible()
    assert pane.view.notice.text().startswith("The engine stopped unexpectedly (")
    reply = last_reply(pane)
    assert reply.status == "interrupted"
    assert "stopped unexpectedly" in (reply.error or "")
    assert window.status.model_label.text() == "Engine stopped"

    set_max_tokens(pane, 8)
    send_and_wait(qtbot, pane, "Say hi.")
    assert window.engine.host.pid != first_pid
    assert last_reply(pane).status == "complete"
    assert not pane.view.notice.isVisible()
    assert len(pane.store.active_path(pane.conversation_id)) == 4


def test_switching_chats_while_streaming_keeps_the_live_reply(qtbot: Any, window: Any) -> None:
    pane = window.chat
    other = pane.new_conversation()
    pane.store.add_message(other, "user", "An older chat")
    streaming = pane.new_conversation()
    set_max_tokens(pane, 400)
    wait_loaded(qtbot, window)
    with qtbot.waitSignal(pane.token_received, timeout=60_000):
        pane.send("Write a very long poem about the sea.")
    pane.open_conversation(other)
    assert pane.view.streaming is None
    assert [w.text for w in pane.view.message_widgets()] == ["An older chat"]
    with qtbot.waitSignal(pane.token_received, timeout=60_000):
        pass
    pane.open_conversation(streaming)
    widgets = pane.view.message_widgets()
    assert pane.view.streaming is widgets[-1]
    assert [w.role for w in widgets] == ["user", "assistant"]
    qtbot.waitUntil(lambda: bool(pane.view.streamed_text()), timeout=30_000)
    with qtbot.waitSignal(pane.streaming_changed, timeout=30_000):
        pane.stop()
    assert last_reply(pane).status == "cancelled"
    assert len(pane.view.message_widgets()) == 2


def test_a_model_that_cannot_load_keeps_the_message(qtbot: Any, make_window: Any,
                                                    gui_settings: Any, tmp_path: Any) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    gui_settings.engine.model_path = str(broken)
    window = make_window(gui_settings)
    pane = window.chat
    with qtbot.waitSignal(pane.streaming_changed, timeout=60_000,
                          check_params_cb=lambda streaming: streaming is False):
        pane.send("Are you there?")
    assert pane.view.notice.text().startswith("The model could not be loaded:")
    assert pane.composer.text() == "Are you there?"
    assert window.status.model_label.text() == "Model not loaded"


def test_run_model_loads_a_chosen_file(qtbot: Any, make_window: Any, default_model: Any) -> None:
    window = make_window(load=False)
    assert window.status.model_label.text() == "No model loaded"
    with qtbot.waitSignal(window.engine.loaded, timeout=60_000):
        window.load_model(str(default_model))
    assert window.status.engine_label.text() == "llama.cpp"
    assert window.status.model_label.text() == default_model.stem
