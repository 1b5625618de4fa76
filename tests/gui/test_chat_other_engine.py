"""Per-chat engine choice and "Run on the other engine", with real engine hosts.

The llama.cpp side runs the bundled GGUF model; the MLX side runs the same file
through its MLX copy (made once in the test's profile) or a tiny random-weight
MLX folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel

from macllm_app.core.chat.store import ChatStore
from macllm_app.core.library.mlx_copies import PROGRESS_PREFIX
from tests.support.gui_helpers import (
    STATS,
    last_reply,
    seed_conversation,
    send_and_wait,
    set_max_tokens,
    wait_loaded,
)

pytestmark = pytest.mark.gui


@pytest.fixture
def store() -> Any:
    with ChatStore() as chat_store:
        yield chat_store


def _engine_items(pane: Any) -> dict[str, tuple[str, bool, str]]:
    """Engine combo items: data -> (text, enabled, tooltip)."""
    box = pane.settings_panel.engine_box
    model = box.model()
    assert isinstance(model, QStandardItemModel)
    return {str(box.itemData(i)): (box.itemText(i), model.item(i).isEnabled(),
                                   model.item(i).toolTip()) for i in range(box.count())}


def _choose_engine(qtbot: Any, pane: Any, engine: str | None) -> None:
    box = pane.settings_panel.engine_box
    box.setCurrentIndex(box.findData(engine) if engine else 0)
    qtbot.waitUntil(lambda: pane.store.get_conversation(pane.conversation_id)
                    .settings.get("engine") == engine, timeout=3000)


def _wait_engines_known(qtbot: Any, pane: Any) -> None:
    qtbot.waitUntil(lambda: pane.engines.known() is not None, timeout=10_000)


def _compare_button(pane: Any) -> Any:
    button = pane.view.message_widgets()[-1].compare_button
    assert button is not None
    return button


# -- no engine needed ----------------------------------------------------------

def test_engine_choice_is_saved_with_the_conversation(qtbot: Any, make_window: Any,
                                                      store: Any) -> None:
    first = seed_conversation(store, [("q", "a")], "First")
    second = seed_conversation(store, [("q2", "a2")], "Second")
    window = make_window(load=False, store=store)
    pane = window.chat
    pane.open_conversation(first)
    _wait_engines_known(qtbot, pane)
    items = _engine_items(pane)
    assert items["None"][0] == "Automatic (llama.cpp)"
    assert items["llama.cpp"][1] and items["mlx"][1], "the bundled GGUF runs on both"
    _choose_engine(qtbot, pane, "mlx")
    settings = store.get_conversation(first).settings
    assert settings["engine"] == "mlx"
    assert "temperature" in settings, "the sampling is saved along"
    pane.open_conversation(second)
    assert pane.settings_panel.engine() is None
    pane.open_conversation(first)
    assert pane.settings_panel.engine() == "mlx"
    _choose_engine(qtbot, pane, None)
    assert "engine" not in store.get_conversation(first).settings


def test_comparison_table_shows_both_replies(qtbot: Any, make_window: Any,
                                             store: Any) -> None:
    conversation = seed_conversation(store, [("Hi", "Hello from llama.cpp")],
                                     stats={**STATS, "peak_rss_bytes": 300 * 1024**2})
    first = store.active_path(conversation)[-1]
    second = store.start_reply(conversation, first.parent_id)
    store.finish_reply(second.id, "Hello from MLX", "complete",
                       {**STATS, "engine": "mlx", "decode_tps": 6.5, "ttft_s": 1.5,
                        "compared_with": first.id})
    window = make_window(load=False, store=store)
    pane = window.chat
    pane.open_conversation(conversation)
    widget = pane.view.message_widgets()[-1]
    table = widget.comparison
    assert table is not None and table.isVisible()
    assert [table.cell(0, c) for c in range(3)] == ["Engine", "llama.cpp", "mlx"]
    assert [table.cell(1, c) for c in (1, 2)] == ["0.05 s", "1.50 s"]
    assert [table.cell(3, c) for c in (1, 2)] == ["90.0 tok/s", "6.5 tok/s"]
    assert table.cell(5, 1) == "300.0 MB" and table.cell(5, 2) == "–"
    assert "mlx" in widget.footer.text()
    assert widget.branch_label is not None and widget.branch_label.text() == "2/2"
    link = table.findChild(type(widget.footer), "compareEarlier")
    link.linkActivated.emit("earlier")
    assert last_reply(pane).id == first.id
    assert pane.view.message_widgets()[-1].comparison is None


def test_other_engine_disabled_when_mlx_is_not_installed(
        qtbot: Any, make_window: Any, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from macllm_app.core.chat import engine_choice

    monkeypatch.setattr(engine_choice, "installed_engines", lambda: ("llama.cpp",))
    conversation = seed_conversation(store, [("Hi", "Hello")])
    window = make_window(load=False, store=store)
    pane = window.chat
    pane.open_conversation(conversation)
    _wait_engines_known(qtbot, pane)
    button = _compare_button(pane)
    assert button.isVisible() and not button.isEnabled()
    assert button.toolTip() == "MLX is not installed."
    action = window.action_registry["chat.compare_engines"]
    assert not action.isEnabled()
    assert action.toolTip() == "MLX is not installed."
    assert _engine_items(pane)["mlx"][1:] == (False, "MLX is not installed.")


# -- real engine hosts -----------------------------------------------------------

@pytest.mark.mlx
@pytest.mark.slow
def test_an_mlx_folder_runs_on_mlx_only(qtbot: Any, make_window: Any,
                                        tmp_path: Path) -> None:
    from tests.support.mlx_tiny import make_tiny_mlx_model

    folder = make_tiny_mlx_model(tmp_path / "tiny-mlx")
    window = make_window(load=False)
    pane = window.chat
    with qtbot.waitSignal(window.engine.loaded, timeout=60_000):
        window.load_model(str(folder))
    assert window.status.engine_label.text() == "mlx"
    set_max_tokens(pane, 4)
    send_and_wait(qtbot, pane, "Hi")
    reply = last_reply(pane)
    assert reply.stats is not None and reply.stats["engine"] == "mlx"
    assert "mlx" in pane.view.message_widgets()[-1].footer.text()
    _wait_engines_known(qtbot, pane)
    button = _compare_button(pane)
    assert not button.isEnabled()
    assert button.toolTip() == "llama.cpp runs GGUF files; this model is an MLX folder."
    assert not window.action_registry["chat.compare_engines"].isEnabled()
    items = _engine_items(pane)
    assert items["None"][0] == "Automatic (MLX)"
    assert not items["llama.cpp"][1] and items["mlx"][1]


@pytest.mark.mlx
@pytest.mark.llamacpp
@pytest.mark.slow
def test_run_on_the_other_engine_then_switch_engines_per_chat(qtbot: Any,
                                                             window: Any) -> None:
    pane = window.chat
    set_max_tokens(pane, 3)
    wait_loaded(qtbot, window)
    assert window.status.engine_label.text() == "llama.cpp"
    send_and_wait(qtbot, pane, "Hi.")
    first = last_reply(pane)
    assert first.stats is not None and first.stats["engine"] == "llama.cpp"
    action = window.action_registry["chat.compare_engines"]
    qtbot.waitUntil(action.isEnabled, timeout=10_000)
    assert action.text() == "Run on MLX"
    button = _compare_button(pane)
    assert button.text() == "Run on MLX" and button.isEnabled()

    # Compare: the same message answered on MLX (converted on first use), beside the first.
    load_messages: list[str] = []
    window.engine.load_progress.connect(lambda _f, message: load_messages.append(message))
    with qtbot.waitSignal(pane.streaming_changed, timeout=300_000,
                          check_params_cb=lambda streaming: streaming is False):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert pane.view.streaming is not None
        assert pane.view.streaming.footer.text() == "loading the model on MLX…"
        assert window.status.model_label.text().startswith("Loading ")
        assert window.status.engine_label.text() == "mlx"
    second = last_reply(pane)
    assert second.status == "complete", second.error
    assert any(m.startswith(PROGRESS_PREFIX) for m in load_messages), load_messages
    assert second.stats is not None and second.stats["engine"] == "mlx"
    assert second.stats["compared_with"] == first.id
    assert [m.id for m in pane.store.siblings(second.id)] == [first.id, second.id]
    widget = pane.view.message_widgets()[-1]
    assert widget.comparison is not None
    assert [widget.comparison.cell(0, c) for c in (1, 2)] == ["llama.cpp", "mlx"]
    assert all(widget.comparison.cell(3, c).endswith(" tok/s") for c in (1, 2))
    assert all(widget.comparison.cell(5, c).endswith(" MB") for c in (1, 2))
    assert "mlx" in widget.footer.text()
    assert window.status.engine_label.text() == "mlx"
    assert "engine" not in pane.store.get_conversation(pane.conversation_id).settings
    assert _compare_button(pane).text() == "Run on llama.cpp"

    # The chat chooses MLX: the host already runs it, so no reload.
    mlx_pid = window.engine.host.pid
    _choose_engine(qtbot, pane, "mlx")
    send_and_wait(qtbot, pane, "Again.")
    assert window.engine.host.pid == mlx_pid
    assert last_reply(pane).stats["engine"] == "mlx"

    # Back to Automatic: the model is loaded again on llama.cpp, in a fresh host.
    _choose_engine(qtbot, pane, None)
    send_and_wait(qtbot, pane, "Once more.")
    assert window.engine.host.pid != mlx_pid
    assert last_reply(pane).stats["engine"] == "llama.cpp"
    assert window.status.engine_label.text() == "llama.cpp"
