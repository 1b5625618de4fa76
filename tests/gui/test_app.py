"""The application shell: settings, preferences, menus, hooks, self-test, import rules."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from macllm_app.core import paths
from macllm_app.core import settings as settings_mod

pytestmark = pytest.mark.gui
REPO = Path(__file__).resolve().parents[2]


def test_corrupt_settings_file_gives_defaults(qtbot: Any, make_window: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    paths.settings_path().write_text("{ this is not json", encoding="utf-8")
    from macllm_app.ui.main_window import MainWindow

    with caplog.at_level(logging.WARNING, logger="macllm.settings"):
        window = MainWindow(load_on_show=False)
    qtbot.addWidget(window)
    assert window.settings == settings_mod.Settings()
    assert "not valid JSON" in caplog.text
    window.close()
    saved = settings_mod.load()
    assert saved.ui.window_geometry, "closing saves the window state over the bad file"


def test_preferences_dialog_is_generated_from_the_schema(qtbot: Any) -> None:
    from PySide6.QtWidgets import QComboBox, QSpinBox

    from macllm_app.ui.preferences import PreferencesDialog

    current = settings_mod.Settings()
    dialog = PreferencesDialog(current)
    qtbot.addWidget(dialog)
    for group in settings_mod.PREFERENCE_GROUPS:
        fields = type(getattr(current, group)).model_fields
        form = dialog.forms[group]
        for name, info in fields.items():
            assert form.editor(name).toolTip() == (info.description or "")
    n_ctx = dialog.forms["engine"].editor("n_ctx")
    assert isinstance(n_ctx, QSpinBox) and n_ctx.minimum() == 256
    threads = dialog.forms["engine"].editor("n_threads")
    assert isinstance(threads, QSpinBox) and threads.specialValueText() == "Auto"
    assert isinstance(dialog.forms["engine"].editor("engine"), QComboBox)
    n_ctx.setValue(8192)
    threads.setValue(3)
    dialog.accept()
    result = dialog.result_settings()
    assert result is not None
    assert result.engine.n_ctx == 8192 and result.engine.n_threads == 3
    assert result.sampling == current.sampling


def test_menus_come_from_the_action_registry(qtbot: Any, make_window: Any) -> None:
    from PySide6.QtGui import QAction, QKeySequence

    window = make_window(load=False)
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&Edit", "&Chat", "&Window", "&Help"]
    registry = window.action_registry
    assert registry["chat.new"].shortcut() == QKeySequence(QKeySequence.StandardKey.New)
    assert registry["app.preferences"].menuRole() == QAction.MenuRole.PreferencesRole
    assert registry["chat.stop"].shortcut().toString() == "Esc"
    assert not registry["chat.stop"].isEnabled()
    assert not registry["chat.export_json"].isEnabled(), "no chat is open yet"


def test_window_is_interactive_while_the_model_loads(qtbot: Any, window: Any) -> None:
    assert window.engine.is_loading()
    assert window.status.progress.isVisible()
    assert window.status.model_label.text().startswith("Loading ")
    window.chat.new_conversation()
    assert window.chat.sidebar.model.rowCount() == 1
    qtbot.waitUntil(window.engine.is_ready, timeout=60_000)
    assert not window.status.progress.isVisible()


def test_crash_handler_separates_user_errors_from_bugs(qtbot: Any) -> None:
    from macllm_app.core.errors import UserError
    from macllm_app.ui.crash import CrashHandler

    handler = CrashHandler(show_dialogs=False)
    for exc in (UserError("The file is missing."), ValueError("boom")):
        with qtbot.waitSignal(handler.report) as blocker:
            handler.handle(type(exc), exc, None)
        assert blocker.args is not None
        summary, details, is_user = blocker.args
        if is_user:
            assert summary == "The file is missing." and details == ""
        else:
            assert summary == "ValueError: boom" and "ValueError" in details


def test_ui_modules_import_no_engine() -> None:
    code = ("import sys\n"
            "import macllm_app.ui.app, macllm_app.ui.main_window, macllm_app.ui.tasks\n"
            "import macllm_app.ui.panes.chat.pane, macllm_app.ui.selftest\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('llama_cpp', 'mlx', "
            "'mlx_lm')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def _self_test(*paths: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("macllm-app", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "macllm_app"]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([*command, "--self-test", "--timeout", "240", *paths], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.llamacpp
@pytest.mark.slow
def test_self_test_subprocess_exits_zero_and_opens_a_model_it_is_given(
        default_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "given.gguf"
    shutil.copyfile(default_model, model)
    result = _self_test(str(model))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "self-test ok" in result.stdout
    assert "frozen bundle" not in result.stdout  # from source: no bundle check


@pytest.mark.llamacpp
@pytest.mark.slow
def test_self_test_names_a_model_it_cannot_open(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a model at all")
    result = _self_test(str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "self-test failed: opening broken.gguf: not a GGUF file or MLX model folder")


def test_exceptions_in_slots_and_threads_reach_the_crash_handler(qtbot: Any) -> None:
    import threading

    from PySide6.QtCore import QTimer

    from macllm_app.ui.crash import CrashHandler

    handler = CrashHandler(show_dialogs=False)
    handler.install()
    try:
        def slot() -> None:
            raise ValueError("slot boom")

        def work() -> None:
            raise RuntimeError("thread boom")

        QTimer.singleShot(0, slot)
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        qtbot.waitUntil(lambda: len(handler.reports) == 2, timeout=3000)
    finally:
        handler.uninstall()
    assert sorted(handler.reports) == ["RuntimeError: thread boom", "ValueError: slot boom"]


def test_preferences_action_saves_the_settings_file(qtbot: Any, make_window: Any) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from macllm_app.ui.preferences import PreferencesDialog

    window = make_window(load=False)

    def edit_and_accept() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, PreferencesDialog)
        dialog.forms["chat"].editor("system_prompt").setPlainText("Be brief.")  # type: ignore[attr-defined]
        dialog.accept()

    QTimer.singleShot(0, edit_and_accept)
    window.action_registry["app.preferences"].trigger()
    assert window.settings.chat.system_prompt == "Be brief."
    assert settings_mod.load().chat.system_prompt == "Be brief."
    window.chat.new_conversation()
    conversation = window.chat.store.get_conversation(window.chat.conversation_id)
    assert conversation.system_prompt == "Be brief."


def test_a_registered_pane_gets_a_sidebar_button(qtbot: Any, make_window: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QLabel, QToolButton

    from macllm_app.ui.icons import chat_icon
    from macllm_app.ui.panes import registry

    monkeypatch.setattr(registry, "PANES", list(registry.PANES))
    registry.register_pane(registry.PaneSpec("extra", "Extra", chat_icon,
                                             lambda _context: QLabel("models")))
    with pytest.raises(ValueError, match="twice"):
        registry.register_pane(registry.PaneSpec("extra", "Again", chat_icon,
                                                 lambda _context: QLabel()))
    monkeypatch.setattr("macllm_app.ui.main_window.PANES", registry.PANES)
    window = make_window(load=False)
    button = window.findChild(QToolButton, "pane.extra")
    assert button is not None
    button.click()
    assert window.stack.currentWidget() is window.panes["extra"]
    assert window.settings.ui.sidebar_pane == "extra"
    window.show_pane("chat")
    assert window.stack.currentWidget() is window.chat


def test_status_bar_says_when_a_load_makes_an_mlx_copy(qtbot: Any) -> None:
    from macllm_app.core.library.mlx_copies import PROGRESS_PREFIX
    from macllm_app.ui.status_bar import StatusBar

    bar = StatusBar()
    qtbot.addWidget(bar)
    bar.set_loading("SmolLM2.gguf", "mlx")
    bar.set_progress(0.1, "Loading weights")
    assert bar.model_label.text() == "Loading SmolLM2.gguf…"
    bar.set_progress(0.3, f"{PROGRESS_PREFIX}: Reading tensors")
    assert bar.model_label.text() == "Loading SmolLM2.gguf… making its MLX copy"
    assert bar.progress.value() == 300
    assert bar.progress.toolTip().endswith("Reading tensors")
