"""Every user command declared once: id, title, shortcut, menu, role.

Menus and shortcuts are built from this table. Shortcuts use QKeySequence
standard keys or "Ctrl+..." strings, which Qt maps to Cmd on macOS.
Handlers are connected by whoever owns the behaviour (window or pane).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar

Shortcut = QKeySequence.StandardKey | str | None

MENUS: tuple[tuple[str, str], ...] = (
    ("file", "&File"), ("edit", "&Edit"), ("chat", "&Chat"), ("window", "&Window"),
    ("help", "&Help"),
)


@dataclass(frozen=True, slots=True)
class ActionSpec:
    id: str
    title: str
    menu: str
    shortcut: Shortcut = None
    role: QAction.MenuRole = QAction.MenuRole.NoRole
    enabled: bool = True
    separator_before: bool = False
    tip: str = ""


SK = QKeySequence.StandardKey
ROLE = QAction.MenuRole

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("chat.new", "New Chat", "file", SK.New, tip="Start a new conversation"),
    ActionSpec("chat.export_markdown", "Export as Markdown…", "file", separator_before=True,
               enabled=False),
    ActionSpec("chat.export_json", "Export as JSON…", "file", enabled=False),
    ActionSpec("app.quit", "Quit MacLLM", "file", SK.Quit, ROLE.QuitRole,
               separator_before=True),
    ActionSpec("chat.undo_delete", "Undo Delete Chat", "edit", SK.Undo, enabled=False),
    ActionSpec("edit.find", "Find in Chats", "edit", SK.Find, separator_before=True),
    ActionSpec("app.preferences", "Preferences…", "edit", SK.Preferences, ROLE.PreferencesRole,
               separator_before=True),
    ActionSpec("chat.stop", "Stop Generating", "chat", "Esc", enabled=False),
    ActionSpec("chat.regenerate", "Regenerate Reply", "chat", "Ctrl+R", enabled=False),
    ActionSpec("chat.compare_engines", "Run on the Other Engine", "chat", "Ctrl+Shift+R",
               enabled=False, tip="Answer the last message again on the other engine and "
               "compare the two replies"),
    ActionSpec("chat.rename", "Rename Chat", "chat", "F2", enabled=False,
               separator_before=True),
    ActionSpec("chat.delete", "Delete Chat", "chat", "Ctrl+Backspace", enabled=False),
    ActionSpec("engine.run", "Run Model…", "chat", "Ctrl+O", separator_before=True,
               tip="Load a GGUF file or MLX folder into the engine"),
    ActionSpec("chat.toggle_settings", "Show Chat Settings", "chat", "Ctrl+Shift+S",
               separator_before=True),
    ActionSpec("window.minimize", "Minimize", "window", "Ctrl+M"),
    ActionSpec("window.zoom", "Zoom", "window"),
    ActionSpec("help.logs", "Show Logs Folder", "help"),
    ActionSpec("help.about", "About MacLLM", "help", role=ROLE.AboutRole),
)


class ActionRegistry(QObject):
    """Creates the QActions of ACTIONS (plus any registered later) and the menus."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._specs: dict[str, ActionSpec] = {}
        self._actions: dict[str, QAction] = {}
        for spec in ACTIONS:
            self.register(spec)

    def register(self, spec: ActionSpec) -> QAction:
        if spec.id in self._specs:
            raise ValueError(f"action {spec.id!r} registered twice")
        action = QAction(spec.title, self)
        action.setObjectName(spec.id)
        action.setMenuRole(spec.role)
        action.setEnabled(spec.enabled)
        if spec.tip:
            action.setStatusTip(spec.tip)
        if isinstance(spec.shortcut, str):
            action.setShortcut(QKeySequence(spec.shortcut))
        elif spec.shortcut is not None:
            action.setShortcuts(spec.shortcut)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self._specs[spec.id] = spec
        self._actions[spec.id] = action
        return action

    def __getitem__(self, action_id: str) -> QAction:
        return self._actions[action_id]

    def ids(self) -> list[str]:
        return list(self._actions)

    def on(self, action_id: str, handler: Callable[[], object]) -> None:
        self._actions[action_id].triggered.connect(lambda _checked=False: handler())

    def set_enabled(self, action_id: str, enabled: bool) -> None:
        self._actions[action_id].setEnabled(enabled)

    def build_menus(self, bar: QMenuBar) -> dict[str, QMenu]:
        menus: dict[str, QMenu] = {}
        for key, title in MENUS:
            menu = bar.addMenu(title)
            menu.setObjectName(f"menu.{key}")
            menus[key] = menu
        for action_id, action in self._actions.items():
            spec = self._specs[action_id]
            menu = menus[spec.menu]
            if spec.separator_before and not menu.isEmpty():
                menu.addSeparator()
            menu.addAction(action)
        return menus
