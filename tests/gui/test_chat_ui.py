"""Chat pane behaviour that needs no engine: search, delete/undo, input keys, export,
rendering, per-chat settings. The window is started without loading a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from macllm_app.core.chat.store import ChatStore
from tests.support.gui_helpers import STATS, seed_conversation

pytestmark = pytest.mark.gui


@pytest.fixture
def store() -> Any:
    with ChatStore() as chat_store:
        yield chat_store


def test_search_finds_message_and_opens_it(qtbot: Any, make_window: Any, store: Any) -> None:
    seed_conversation(store, [("Tell me about otters", "Otters are playful.")], "Otters")
    target = seed_conversation(store, [("Hi", "Hello!"), ("Favourite fruit?", "Mangosteen.")],
                               "Fruit")
    window = make_window(load=False, store=store)
    pane = window.chat
    window.activateWindow()
    window.action_registry["edit.find"].trigger()
    qtbot.waitUntil(pane.sidebar.search.hasFocus, timeout=2000)
    qtbot.keyClicks(pane.sidebar.search, "mangosteen")
    results = pane.sidebar.results
    qtbot.waitUntil(lambda: results.count() == 1 and results.item(0).data(
        Qt.ItemDataRole.UserRole + 1) is not None)
    hit_message = store.active_path(target)[-1]
    item = results.item(0)
    assert item.data(Qt.ItemDataRole.UserRole + 1) == (target, hit_message.id)
    pane.sidebar.results.itemClicked.emit(item)
    assert pane.conversation_id == target
    assert any(w.message is not None and w.message.id == hit_message.id
               and w.property("highlight") for w in pane.view.message_widgets())
    pane.sidebar.search.clear()
    qtbot.waitUntil(lambda: pane.sidebar.stack.currentWidget() is pane.sidebar.list)


def test_delete_then_undo_restores(qtbot: Any, make_window: Any, store: Any) -> None:
    keep = seed_conversation(store, [("a", "b")], "Keep me")
    doomed = seed_conversation(store, [("c", "d")], "Delete me")
    window = make_window(load=False, store=store)
    pane = window.chat
    pane.open_conversation(doomed)
    pane.delete_conversation(doomed)
    assert pane.sidebar.model.rowCount() == 1
    assert pane.conversation_id == keep
    assert window.status.undo_button.isVisible()
    assert "Delete me" in window.status.toast_label.text()
    qtbot.mouseClick(window.status.undo_button, Qt.MouseButton.LeftButton)
    assert pane.sidebar.model.rowCount() == 2
    assert pane.conversation_id == doomed
    assert not window.status.undo_button.isVisible()
    # Ctrl/Cmd+Z (the Edit menu's Undo Delete) does the same.
    pane.delete_conversation(doomed)
    undo = window.action_registry["chat.undo_delete"]
    assert undo.isEnabled()
    undo.trigger()
    assert {c.id for c in store.list_conversations()} == {keep, doomed}
    assert not undo.isEnabled()


def test_rename_inline_edits_the_title(qtbot: Any, make_window: Any, store: Any) -> None:
    conversation = seed_conversation(store, [("a", "b")], "Old name")
    window = make_window(load=False, store=store)
    model = window.chat.sidebar.model
    assert model.setData(model.index(0, 0), "New name")
    assert store.get_conversation(conversation).title == "New name"
    assert model.data(model.index(0, 0)) == "New name"


def test_enter_sends_and_shift_enter_adds_a_line(qtbot: Any) -> None:
    from macllm_app.ui.panes.chat.composer import Composer

    composer = Composer()
    qtbot.addWidget(composer)
    composer.show()
    sent: list[str] = []
    composer.submitted.connect(sent.append)
    qtbot.keyClicks(composer.edit, "first line")
    one_line = composer.edit.height()
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(composer.edit, "second line")
    assert sent == []
    assert composer.edit.height() > one_line, "the box grows with its text"
    assert composer.text() == "first line\nsecond line"
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert sent == ["first line\nsecond line"]
    assert composer.text() == ""
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert sent == ["first line\nsecond line"], "an empty box sends nothing"
    composer.set_streaming(True)
    qtbot.keyClicks(composer.edit, "while streaming")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert len(sent) == 1 and composer.send_button.text() == "Stop"


def test_export_writes_markdown_and_json(qtbot: Any, make_window: Any, store: Any,
                                         tmp_path: Path) -> None:
    conversation = seed_conversation(store, [("Export me", "**Done**.")], "Exported chat")
    window = make_window(load=False, store=store)
    pane = window.chat
    pane.open_conversation(conversation)
    assert window.action_registry["chat.export_markdown"].isEnabled()
    for kind, name in (("markdown", "chat.md"), ("json", "chat.json")):
        task = pane.export(kind, str(tmp_path / name))
        assert task is not None
        qtbot.waitUntil(lambda t=task: t.outcome == "done", timeout=10_000)
    markdown = (tmp_path / "chat.md").read_text()
    assert "# Exported chat" in markdown and "**Done**." in markdown
    document = json.loads((tmp_path / "chat.json").read_text())
    assert [m["content"] for m in document["messages"]] == ["Export me", "**Done**."]


def test_markdown_code_blocks_have_copy_links(qtbot: Any, make_window: Any,
                                              store: Any) -> None:
    reply = "Here:\n\n```python\nprint('hi')\n```\n\nand `inline`."
    conversation = seed_conversation(store, [("code please", reply)])
    window = make_window(load=False, store=store)
    window.chat.open_conversation(conversation)
    widget = window.chat.view.message_widgets()[-1]
    assert 'href="copy:0"' in widget.body.text()
    assert "<pre" in widget.body.text()
    widget.body.linkActivated.emit("copy:0")
    assert QGuiApplication.clipboard().text() == "print('hi')"
    widget.copy_text()
    assert QGuiApplication.clipboard().text() == reply
    assert "TTFT 0.05 s" in widget.footer.text() and "90.0 tok/s" in widget.footer.text()


def test_interrupted_reply_from_last_run_is_shown(qtbot: Any, make_window: Any,
                                                  store: Any) -> None:
    conversation = store.create_conversation()
    user = store.add_message(conversation.id, "user", "Hello?")
    store.start_reply(conversation.id, user.id)  # left "streaming" by a crash
    window = make_window(load=False, store=store)
    window.chat.open_conversation(conversation.id)
    reply = store.active_path(conversation.id)[-1]
    assert reply.status == "interrupted"
    footer = window.chat.view.message_widgets()[-1].footer
    assert footer.isVisible() and footer.text().startswith("INTERRUPTED")


def test_context_indicator_and_dropped_messages_note(qtbot: Any, make_window: Any,
                                                     store: Any) -> None:
    stats = {**STATS, "prompt_tokens": 3900, "generated_tokens": 100, "dropped_messages": 3}
    conversation = seed_conversation(store, [("q", "a")], stats=stats)
    window = make_window(load=False, store=store)
    window.chat.open_conversation(conversation)
    assert window.chat.context_label.text() == "4,000 / 4,096 tokens"
    note = window.chat.dropped_note
    assert note.isVisible()
    assert note.text() == ("3 older messages were left out to fit the context window "
                           "(system prompt kept)")


def test_chat_settings_panel_saves_to_the_conversation(qtbot: Any, make_window: Any,
                                                       store: Any) -> None:
    from PySide6.QtWidgets import QDoubleSpinBox

    conversation = seed_conversation(store, [("q", "a")])
    window = make_window(load=False, store=store)
    pane = window.chat
    pane.open_conversation(conversation)
    window.action_registry["chat.toggle_settings"].trigger()
    panel = pane.settings_panel
    assert panel.isVisible()
    panel.system_prompt.setPlainText("Answer like a pirate.")
    assert panel.form is not None
    temperature = panel.form.editor("temperature")
    assert isinstance(temperature, QDoubleSpinBox)
    temperature.setValue(0.3)
    qtbot.waitUntil(lambda: store.get_conversation(conversation).system_prompt
                    == "Answer like a pirate.", timeout=3000)
    assert store.get_conversation(conversation).settings["temperature"] == pytest.approx(0.3)


def test_new_chat_uses_default_system_prompt_and_sampling(qtbot: Any, make_window: Any,
                                                          gui_settings: Any) -> None:
    window = make_window(load=False)
    window.action_registry["chat.new"].trigger()
    conversation = window.chat.store.get_conversation(window.chat.conversation_id)
    assert conversation.system_prompt == gui_settings.chat.system_prompt
    assert conversation.settings["max_tokens"] == gui_settings.sampling.max_tokens


def test_rename_and_delete_actions_work_on_the_open_chat(qtbot: Any, make_window: Any,
                                                        store: Any) -> None:
    first = seed_conversation(store, [("a", "b")], "First")
    second = seed_conversation(store, [("c", "d")], "Second")
    window = make_window(load=False, store=store)
    pane = window.chat
    pane.open_conversation(second)
    window.action_registry["chat.rename"].trigger()
    assert pane.sidebar.list.state() == pane.sidebar.list.State.EditingState
    window.action_registry["chat.delete"].trigger()
    assert [c.id for c in store.list_conversations()] == [first]
    assert pane.conversation_id == first


def test_last_open_chat_is_reopened_next_time(qtbot: Any, make_window: Any,
                                              gui_settings: Any, store: Any) -> None:
    older = seed_conversation(store, [("old", "reply")], "Older")
    seed_conversation(store, [("new", "reply")], "Newer")
    window = make_window(load=False, store=store)
    window.chat.open_conversation(older)
    window.close()
    from macllm_app.core import settings as settings_mod

    saved = settings_mod.load()
    assert saved.ui.last_conversation_id == older
    again = make_window(saved, load=False, store=store)
    assert again.chat.conversation_id == older
    assert again.chat.title.text() == "Older"


def test_markdown_never_loads_images_or_raw_html() -> None:
    from macllm_app.ui.panes.chat.markdown import render_markdown

    rendered = render_markdown("![cat](/home/me/cat.png) <img src='/etc/x.png'> <b>hi</b>")
    assert "<img" not in rendered.html
    assert '<a href="/home/me/cat.png"' in rendered.html
    assert "&lt;b&gt;hi&lt;/b&gt;" in rendered.html
