"""Connects the Chat pane to the application's actions and keeps their enabled state."""

from __future__ import annotations

from macllm_app.core.types import engine_title
from macllm_app.ui.actions import ActionRegistry
from macllm_app.ui.panes.chat.pane import ChatPane

COMPARE_TITLE = "Run on the Other Engine"


def bind_chat_actions(pane: ChatPane, actions: ActionRegistry) -> None:
    actions.on("chat.new", pane.new_conversation)
    actions.on("chat.stop", pane.stop)
    actions.on("chat.regenerate", pane.regenerate)
    actions.on("chat.compare_engines", pane.run_on_other_engine)
    actions.on("chat.export_markdown", lambda: pane.export("markdown"))
    actions.on("chat.export_json", lambda: pane.export("json"))
    actions.on("chat.undo_delete", pane.undo_delete)
    actions.on("edit.find", pane.sidebar.focus_search)

    def rename() -> None:
        if pane.conversation_id is not None:
            pane.sidebar.rename(pane.conversation_id)

    def delete() -> None:
        if pane.conversation_id is not None:
            pane.delete_conversation(pane.conversation_id)

    actions.on("chat.rename", rename)
    actions.on("chat.delete", delete)
    toggle = actions["chat.toggle_settings"]
    toggle.setCheckable(True)
    toggle.toggled.connect(pane.settings_button.setChecked)
    pane.settings_button.toggled.connect(toggle.setChecked)

    def update() -> None:
        streaming = pane.is_streaming()
        has_chat = pane.conversation_id is not None
        actions.set_enabled("chat.stop", streaming)
        actions.set_enabled("chat.regenerate", pane.can_regenerate())
        actions.set_enabled("chat.export_markdown", has_chat)
        actions.set_enabled("chat.export_json", has_chat)
        actions.set_enabled("chat.rename", has_chat)
        actions.set_enabled("chat.delete", has_chat and not streaming)
        actions.set_enabled("chat.undo_delete", pane.can_undo_delete())
        compare = actions["chat.compare_engines"]
        if pane.compares_instead():
            text, enabled, tip = pane.compare_action()
            compare.setEnabled(enabled)
            compare.setText(text)
            compare.setToolTip(tip)
            return
        target, reason = pane.compare_target()
        compare.setEnabled(target is not None)
        compare.setText(f"Run on {engine_title(target)}" if target else COMPARE_TITLE)
        compare.setToolTip(reason or compare.text())

    pane.streaming_changed.connect(lambda _s: update())
    pane.conversation_changed.connect(lambda _c: update())
    pane.conversation_deleted.connect(lambda _i, _t: update())
    pane.status_message.connect(lambda _m: update())
    pane.actions_changed.connect(update)
    update()
