"""Panes the sidebar can switch between. A new pane (Library, ...) adds one PaneSpec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QWidget

from macllm_app.core.chat.store import ChatStore
from macllm_app.core.settings import Settings
from macllm_app.ui.actions import ActionRegistry
from macllm_app.ui.engine import EngineController
from macllm_app.ui.icons import chat_icon
from macllm_app.ui.monitor_feed import MonitorFeed
from macllm_app.ui.panes.finetune.icon import finetune_icon
from macllm_app.ui.panes.library.icon import library_icon
from macllm_app.ui.panes.monitor.icon import monitor_icon
from macllm_app.ui.panes.quantize.icon import quantize_icon
from macllm_app.ui.panes.server.icon import server_icon


@dataclass(frozen=True, slots=True)
class AppContext:
    """What a pane may use; passed explicitly (no global app object)."""

    store: ChatStore
    engine: EngineController
    settings: Callable[[], Settings]
    actions: ActionRegistry
    status: Callable[[str], None]
    monitor: MonitorFeed


@dataclass(frozen=True, slots=True)
class PaneSpec:
    id: str
    title: str
    icon: Callable[[], QIcon]
    factory: Callable[[AppContext], QWidget]
    shortcut: str = ""


def _chat(context: AppContext) -> QWidget:
    from macllm_app.ui.panes.chat.actions import bind_chat_actions
    from macllm_app.ui.panes.chat.pane import ChatPane

    pane = ChatPane(context.store, context.engine, context.settings)
    bind_chat_actions(pane, context.actions)
    pane.status_message.connect(context.status)
    return pane


def _library(context: AppContext) -> QWidget:
    from macllm_app.ui.panes.library.pane import LibraryPane

    pane = LibraryPane(lambda: context.settings().engine.n_ctx)
    pane.status_message.connect(context.status)
    return pane


def _quantize(context: AppContext) -> QWidget:
    from macllm_app.ui.panes.quantize.pane import QuantizePane

    pane = QuantizePane()
    pane.status_message.connect(context.status)
    return pane


def _finetune(context: AppContext) -> QWidget:
    from macllm_app.ui.panes.finetune.pane import FineTunePane

    pane = FineTunePane()
    pane.status_message.connect(context.status)
    return pane


def _monitor(context: AppContext) -> QWidget:
    from macllm_app.ui.panes.monitor.pane import MonitorPane

    pane = MonitorPane(context.monitor)
    pane.unload_requested.connect(context.engine.unload)
    return pane


def _server(context: AppContext) -> QWidget:
    from macllm_app.ui.panes.server.pane import ServerPane

    pane = ServerPane(settings=context.settings)
    pane.status_message.connect(context.status)
    return pane


PANES: list[PaneSpec] = [
    PaneSpec("chat", "Chat", chat_icon, _chat, "Ctrl+1"),
    PaneSpec("library", "Library", library_icon, _library, "Ctrl+2"),
    PaneSpec("quantize", "Quantize", quantize_icon, _quantize, "Ctrl+3"),
    PaneSpec("finetune", "Fine-tune", finetune_icon, _finetune, "Ctrl+4"),
    PaneSpec("monitor", "Monitor", monitor_icon, _monitor, "Ctrl+5"),
    PaneSpec("server", "Server", server_icon, _server, "Ctrl+6"),
]


def register_pane(spec: PaneSpec) -> None:
    if any(p.id == spec.id for p in PANES):
        raise ValueError(f"pane {spec.id!r} registered twice")
    PANES.append(spec)
