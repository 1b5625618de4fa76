"""The main window: pane switcher, panes, menu bar from the actions registry, status bar."""

from __future__ import annotations

import dataclasses
import logging

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from macllm_app import __version__
from macllm_app.core import paths
from macllm_app.core import settings as settings_mod
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.errors import UserError
from macllm_app.core.library.model_choice import load_config_for
from macllm_app.core.settings import Settings
from macllm_app.core.types import ModelInfo
from macllm_app.ui.actions import ActionRegistry
from macllm_app.ui.engine import EngineController
from macllm_app.ui.guardrails import Guardrails
from macllm_app.ui.monitor_feed import MonitorFeed
from macllm_app.ui.panes.chat.pane import ChatPane
from macllm_app.ui.panes.finetune.pane import FineTunePane
from macllm_app.ui.panes.library.importing import accept_file_drop
from macllm_app.ui.panes.library.pane import LibraryPane
from macllm_app.ui.panes.quantize.pane import QuantizePane
from macllm_app.ui.panes.registry import PANES, AppContext
from macllm_app.ui.preferences import PreferencesDialog
from macllm_app.ui.status_bar import StatusBar
from macllm_app.ui.task_registry import cancel_all_and_wait, job_activity
from macllm_app.ui.widgets.job_strip import JobStrip

log = logging.getLogger("macllm.ui.window")



class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, store: ChatStore | None = None,
                 *, load_on_show: bool = True) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle("MacLLM")
        self.setUnifiedTitleAndToolBarOnMac(True)
        self.resize(1180, 760)
        self.settings = settings if settings is not None else settings_mod.load()
        self.store = store if store is not None else ChatStore()
        self._owns_store = store is None
        self.store.mark_interrupted_replies()
        self.engine = EngineController(lambda: load_config_for(self.settings.engine), self)
        self.action_registry = ActionRegistry(self)
        self.status = StatusBar()
        self.setStatusBar(self.status)
        self.action_registry.build_menus(self.menuBar())
        self._load_on_show = load_on_show
        self._closed = False

        self.monitor = MonitorFeed(self.engine, self)
        context = AppContext(self.store, self.engine, lambda: self.settings, self.action_registry,
                             self._status_message, self.monitor)
        self.panes: dict[str, QWidget] = {}
        self.stack = QStackedWidget()
        switcher = QWidget()
        switcher.setObjectName("paneSwitcher")
        switcher_layout = QVBoxLayout(switcher)
        switcher_layout.setContentsMargins(6, 10, 6, 10)
        self._pane_buttons = QButtonGroup(self)
        self._pane_buttons.setExclusive(True)
        for spec in PANES:
            pane = spec.factory(context)
            self.panes[spec.id] = pane
            self.stack.addWidget(pane)
            button = QToolButton()
            button.setObjectName(f"pane.{spec.id}")
            button.setText(spec.title)
            button.setIcon(spec.icon())
            button.setIconSize(QSize(22, 22))
            button.setToolTip(spec.title)
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            button.setFixedSize(64, 52)
            button.clicked.connect(lambda _c=False, pane_id=spec.id: self.show_pane(pane_id))
            self._pane_buttons.addButton(button)
            switcher_layout.addWidget(button)
            if spec.shortcut:
                button.setShortcut(QKeySequence(spec.shortcut))
        switcher_layout.addStretch(1)
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(switcher)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.setAcceptDrops(True)
        self._wire_actions()
        self._wire_engine()
        self._wire_monitor()
        self._restore_state()

    # -- panes ----------------------------------------------------------------
    @property
    def chat(self) -> ChatPane:
        pane = self.panes["chat"]
        assert isinstance(pane, ChatPane)
        return pane

    def show_pane(self, pane_id: str) -> None:
        pane = self.panes.get(pane_id) or self.panes["chat"]
        self.stack.setCurrentWidget(pane)
        for button in self._pane_buttons.buttons():
            button.setChecked(button.objectName() == f"pane.{pane_id}")
        self.settings.ui.sidebar_pane = pane_id

    # -- wiring ---------------------------------------------------------------
    def _wire_actions(self) -> None:
        self.action_registry.on("app.quit", self.close)
        self.action_registry.on("app.preferences", self.open_preferences)
        self.action_registry.on("engine.run", self.run_model)
        self.action_registry.on("window.minimize", self.showMinimized)
        self.action_registry.on("window.zoom", self._toggle_zoom)
        self.action_registry.on("help.about", self._about)
        self.action_registry.on("help.logs", lambda: QDesktopServices.openUrl(
            QUrl.fromLocalFile(str(paths.logs_dir()))))
        for action_id in self.action_registry.ids():
            self.addAction(self.action_registry[action_id])  # shortcuts work with the menu hidden
        self.chat.conversation_deleted.connect(self._on_conversation_deleted)
        self.chat.title_changed.connect(self._show_title)
        self.chat.streaming_changed.connect(self._on_streaming)
        self.chat.speed_changed.connect(self.status.set_speed)
        library = self.panes.get("library")
        quantize = self.panes.get("quantize")
        if isinstance(library, LibraryPane):
            library.load_requested.connect(self._load_from_library)
        if isinstance(quantize, QuantizePane):
            quantize.load_requested.connect(self._load_from_library)
            quantize.compare_requested.connect(self.compare_with_source)
            if isinstance(library, LibraryPane):
                library.quantize_requested.connect(self.quantize_model)
                quantize.added.connect(lambda _path: library.refresh())
        finetune = self.panes.get("finetune")
        if isinstance(finetune, FineTunePane):
            finetune.chat_requested.connect(self.chat_with_adapter)
            if isinstance(library, LibraryPane):
                library.finetune_requested.connect(self.finetune_model)
                finetune.added.connect(lambda _path: library.refresh())

    def _wire_monitor(self) -> None:
        """The monitor's samples feed the status bar; the chat's speeds and jobs' progress
        feed the monitor; the guardrails act on both."""
        monitor = self.monitor
        monitor.sampled.connect(lambda sample: self.status.set_memory_pressure(sample.pressure))
        self.chat.speed_changed.connect(monitor.add_live_speed)
        self.chat.reply_stats.connect(monitor.add_reply_stats)
        job_activity().progress.connect(monitor.add_job_progress)
        self.guardrails = Guardrails(self, self.engine, monitor, self.chat, self._job_strips(),
                                     self._status_message)
        self.engine.unloaded.connect(self._on_unloaded)

    def _job_strips(self) -> list[JobStrip]:
        """The progress strips of every pane that runs jobs (the guardrails warn there)."""
        return [strip for pane in self.panes.values() for strip in pane.findChildren(JobStrip)]

    @Slot()
    def _on_unloaded(self) -> None:
        self.status.set_model(None, "Model unloaded")
        self._status_message("Model unloaded: it loads again when you send a message.")

    def _wire_engine(self) -> None:
        self.engine.load_started.connect(self._on_load_started)
        self.engine.load_progress.connect(self.status.set_progress)
        self.engine.loaded.connect(self._on_loaded)
        self.engine.load_failed.connect(self._on_load_failed)
        self.engine.crashed.connect(self._on_crashed)

    @Slot(str)
    def _on_load_started(self, name: str) -> None:
        config = self.engine.config
        self.status.set_loading(name, config.engine if config is not None else "")

    @Slot(object)
    def _on_loaded(self, info: ModelInfo) -> None:
        self.status.set_model(info)
        self._status_message(f"Loaded {info.name}")

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.status.set_model(None, "Model not loaded")
        self._status_message(f"The model could not be loaded: {message}")

    @Slot(str)
    def _on_crashed(self, message: str) -> None:
        self.status.set_model(None, "Engine stopped")
        self._status_message(message)

    @Slot(bool)
    def _on_streaming(self, streaming: bool) -> None:
        if not streaming:
            QTimer.singleShot(3000, self._clear_speed_if_idle)

    def _clear_speed_if_idle(self) -> None:
        if not self.chat.is_streaming():
            self.status.clear_speed()

    @Slot(int, str)
    def _on_conversation_deleted(self, _conversation_id: int, title: str) -> None:
        self.status.show_undo(f"Deleted “{title}”", self.chat.undo_delete)

    @Slot(str)
    def _show_title(self, title: str) -> None:
        self.setWindowTitle(f"{title} — MacLLM" if title else "MacLLM")

    def _status_message(self, text: str) -> None:
        self.status.showMessage(text, 6000)

    # -- commands ---------------------------------------------------------------
    @Slot()
    def open_preferences(self) -> None:
        dialog = PreferencesDialog(self.settings, self)
        if dialog.exec() and (new := dialog.result_settings()) is not None:
            engine_changed = new.engine != self.settings.engine
            new.ui = self.settings.ui
            self.settings = new
            settings_mod.save(new)
            if engine_changed:
                self.engine.load(load_config_for(new.engine))

    @Slot()
    def run_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Run a model", "",
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.load_model(path)

    def load_model(self, path: str) -> None:
        try:
            config = load_config_for(self.settings.engine, path)
        except UserError as exc:
            self._status_message(str(exc))
            return
        self.engine.load(config)

    @Slot(str)
    def _load_from_library(self, path: str) -> None:
        self.load_model(path)
        self.show_pane("chat")

    def quantize_model(self, path: str) -> None:
        """Show the Quantize pane with `path` as its source."""
        pane = self.panes.get("quantize")
        if isinstance(pane, QuantizePane):
            self.show_pane("quantize")
            pane.set_source(path)

    def finetune_model(self, path: str) -> None:
        """Show the Fine-tune pane with `path` as its base model."""
        pane = self.panes.get("finetune")
        if isinstance(pane, FineTunePane):
            self.show_pane("finetune")
            pane.set_base(path)

    @Slot(str, str)
    def compare_with_source(self, variant: str, source: str) -> None:
        """Load the quantized model `variant` into the chat, on its own engine, and let
        the chat run the same message on `source`, the model it was quantized from."""
        try:
            config = load_config_for(self.settings.engine, variant)
            reference = load_config_for(self.settings.engine, source)
        except UserError as exc:
            self._status_message(str(exc))
            return
        self.engine.load(config)
        self.chat.set_source_model(config.model_path,
                                   dataclasses.replace(reference, engine=config.engine))
        self.show_pane("chat")

    def chat_with_adapter(self, base: str, adapter_dir: str) -> None:
        """Load `base` with a fine-tuned adapter (an mlx-lm adapter folder) on MLX, where
        it was trained (a GGUF base runs as its MLX copy), and show the chat."""
        try:
            config = load_config_for(self.settings.engine, base)
        except UserError as exc:
            self._status_message(str(exc))
            return
        self.engine.load(dataclasses.replace(config, engine="mlx", adapter_path=adapter_dir))
        self.show_pane("chat")

    def open_files(self, paths: list[str]) -> None:
        """Import dropped or "Open With" files through the Library pane."""
        library = self.panes.get("library")
        if isinstance(library, LibraryPane) and paths:
            self.show_pane("library")
            library.import_paths(paths)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        accept_file_drop(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if paths := accept_file_drop(event):
            self.open_files(paths)

    def _toggle_zoom(self) -> None:
        if self.isMaximized():
            self.showNormal()
        else:
            self.showMaximized()

    def _about(self) -> None:
        QMessageBox.about(self, "About MacLLM",
                          f"<b>MacLLM {__version__}</b><br>Run local language models "
                          "with llama.cpp and MLX.")

    # -- lifetime -----------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._load_on_show:
            self._load_on_show = False
            self.monitor.start()
            QTimer.singleShot(0, self.engine.load)

    def _restore_state(self) -> None:
        ui = self.settings.ui
        if ui.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(ui.window_geometry.encode()))
        self.show_pane(ui.sidebar_pane)
        conversations = self.store.list_conversations()
        wanted = ui.last_conversation_id
        if wanted not in {c.id for c in conversations}:
            wanted = conversations[0].id if conversations else None
        self.chat.open_conversation(wanted)

    def save_state(self) -> None:
        ui = self.settings.ui
        ui.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode()
        ui.last_conversation_id = self.chat.conversation_id
        try:
            settings_mod.save(self.settings)
        except OSError as exc:
            log.warning("Could not save settings: %s", exc)

    def shutdown(self) -> None:
        """Stop streaming, end every task, stop the engine host. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.monitor.stop()
        server = self.panes.get("server")
        if server is not None and hasattr(server, "shutdown"):
            server.shutdown()  # the local server, if it runs, and its engine host
        self.chat.stop()
        self.chat.controller.wait(4.0)
        self.engine.shutdown()
        cancel_all_and_wait(5.0)
        if self._owns_store:
            self.store.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_state()
        self.shutdown()
        super().closeEvent(event)
