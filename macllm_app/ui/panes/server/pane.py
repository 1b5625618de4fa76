"""The Server pane: a switch for the local OpenAI- and Ollama-compatible API, where it
listens (host, port, API key), how many requests run together, the address to give
clients, live counters, a log of finished requests, and example calls to copy.

The server itself runs through `ServerRunner` (on the Qt event loop or a loop
thread); the keychain is read and written through the task API. A server that
cannot start (a busy port, another machine's address without a key) says why in
one line and the app goes on.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal, Slot
from PySide6.QtGui import QFontDatabase, QGuiApplication, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.errors import describe
from macllm_app.core.server.config import ServerConfig, store_api_key, stored_api_key
from macllm_app.ui.panes.server.examples import KINDS, example
from macllm_app.ui.panes.server.log_model import COLUMNS, WIDTHS, RequestLogModel
from macllm_app.ui.panes.server.runner import Mode, ServerRunner
from macllm_app.ui.tasks import Task

if TYPE_CHECKING:
    from macllm_app.core.server.app import RequestRecord, ServerStats
    from macllm_app.core.settings import Settings

DEFAULTS = ServerConfig()
HOSTS = (("127.0.0.1", "this Mac only"), ("0.0.0.0", "every network (needs an API key)"))
DEFAULT_MODEL = "default"  # the library id of the bundled model (`macllm models list`)


class ServerPane(QWidget):
    status_message = Signal(str)

    def __init__(self, mode: Mode | None = None, parent: QWidget | None = None,
                 settings: Callable[[], Settings] | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self.setObjectName("serverPane")
        self.runner = ServerRunner(mode, self)
        self.runner.started.connect(self._on_started)
        self.runner.stopped.connect(self._on_stopped)
        self.runner.failed.connect(self.show_error)
        self.runner.stats_changed.connect(self._show_stats)
        self.log_model = RequestLogModel()
        self.runner.request_finished.connect(self._add_record)
        self.total_requests = 0
        self.active_clients = 0
        self.stats: ServerStats | None = None
        self._stored_key: str | None = None
        self._keychain_asked = False
        self._keychain_read = False
        self._watched_window: QWidget | None = None

        self.switch = QCheckBox("Serve the API")
        self.switch.setObjectName("serverSwitch")
        self.switch.setToolTip("Start or stop MacLLM's OpenAI- and Ollama-compatible server")
        self.switch.toggled.connect(self._on_switch)
        self.error = QLabel()
        self.error.setObjectName("serverError")
        self.error.setStyleSheet("color: #d70015;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        self.state_label = QLabel("Off")
        self.state_label.setObjectName("serverState")
        top = QHBoxLayout()
        top.addWidget(self.switch)
        top.addWidget(self.state_label)
        top.addStretch(1)

        self.host = QComboBox()
        self.host.setObjectName("serverHost")
        self.host.setEditable(True)
        for host, what in HOSTS:
            self.host.addItem(f"{host}", host)
            self.host.setItemData(self.host.count() - 1, what, Qt.ItemDataRole.ToolTipRole)
        self.host.setCurrentText(DEFAULTS.host)
        self.port = QSpinBox()
        self.port.setObjectName("serverPort")
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULTS.port)
        self.parallel = QSpinBox()
        self.parallel.setObjectName("serverParallel")
        self.parallel.setRange(1, 64)
        self.parallel.setValue(DEFAULTS.parallel)
        self.parallel.setToolTip("Requests decoded together (llama.cpp); more wait in a queue")
        self.origins = QLineEdit()
        self.origins.setObjectName("serverOrigins")
        self.origins.setPlaceholderText("none: browsers on other sites are refused")
        self.origins.setToolTip("Web origins (scheme://host:port, comma-separated) whose "
                                "pages may call the API")
        self.key = QLineEdit()
        self.key.setObjectName("serverKey")
        self.key.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.key.setPlaceholderText("none (optional on this Mac, required on a network)")
        self.key.textChanged.connect(self._refresh_examples)
        new_key = QPushButton("New Key")
        new_key.setObjectName("serverNewKey")
        new_key.setToolTip("Make a random key (stored in the keychain when the server starts)")
        new_key.clicked.connect(lambda: self.key.setText("sk-macllm-" + secrets.token_urlsafe(24)))
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(new_key)
        self.form = QWidget()
        form = QFormLayout(self.form)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Parallel requests", self.parallel)
        form.addRow("API key", key_row)
        form.addRow("Allowed origins", self.origins)
        self._restore_fields()

        self.address = QLineEdit()
        self.address.setObjectName("serverAddress")
        self.address.setReadOnly(True)
        self.address.setPlaceholderText("not running")
        copy_address = QPushButton("Copy")
        copy_address.setObjectName("serverCopyAddress")
        copy_address.clicked.connect(lambda: self._copy(self.address.text()))
        address_row = QHBoxLayout()
        address_row.addWidget(QLabel("Address"))
        address_row.addWidget(self.address, 1)
        address_row.addWidget(copy_address)
        self.counters = QLabel()
        self.counters.setObjectName("serverCounters")

        self.log_view = QTableView()
        self.log_view.setObjectName("serverLog")
        self.log_view.setModel(self.log_model)
        self.log_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.log_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.log_view.verticalHeader().hide()
        self.log_view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.log_view.setWordWrap(False)
        header = self.log_view.horizontalHeader()
        char = self.fontMetrics().averageCharWidth()
        for column, name in enumerate(COLUMNS):
            if name in WIDTHS:
                header.resizeSection(column, WIDTHS[name] * char + 12)
            else:
                header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)

        self.examples = QTabWidget()
        self.examples.setObjectName("serverExamples")
        self.example_views: dict[str, QPlainTextEdit] = {}
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for kind in KINDS:
            view = QPlainTextEdit()
            view.setReadOnly(True)
            view.setFont(mono)
            view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            self.example_views[kind] = view
            self.examples.addTab(view, kind)
        copy_example = QPushButton("Copy Example")
        copy_example.setObjectName("serverCopyExample")
        copy_example.clicked.connect(lambda: self._copy(self.current_example()))
        self.examples.setCornerWidget(copy_example)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.log_view)
        splitter.addWidget(self.examples)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.error)
        layout.addWidget(self.form)
        layout.addLayout(address_row)
        layout.addWidget(self.counters)
        layout.addWidget(splitter, 1)

        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._show_counters()
        self._refresh_examples()

    # -- the switch -------------------------------------------------------------------
    def config(self) -> ServerConfig:
        """What the fields say (a pydantic error for a value the schema refuses)."""
        key = self.key.text().strip() or None
        # the keychain was read off the GUI thread (the key field shows its key); until
        # then the server reads it itself
        return ServerConfig(host=self.host.currentText().strip(), port=self.port.value(),
                            parallel=self.parallel.value(), api_key=key,
                            use_keychain=key is None and not self._keychain_read,
                            allowed_origins=self._origins())

    def _origins(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.origins.text().split(",") if o.strip())

    def _restore_fields(self) -> None:
        """The fields as the user last started the server (the Preferences file)."""
        if self._settings is None:
            return
        saved = self._settings().server
        self.host.setCurrentText(saved.host)
        self.port.setValue(saved.port)
        self.parallel.setValue(saved.parallel)
        self.origins.setText(", ".join(saved.allowed_origins))

    def _remember_fields(self, config: ServerConfig) -> None:
        """Keep what the server started with; the window saves it when the app quits."""
        if self._settings is None:
            return
        saved = self._settings().server
        saved.host, saved.port, saved.parallel = config.host, config.port, config.parallel
        saved.allowed_origins = list(config.allowed_origins)

    def start(self, config: ServerConfig | None = None) -> None:
        """Start the server with what the fields say (or `config`)."""
        if self.runner.running:
            return
        self.show_error("")
        try:
            config = config or self.config()
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"])
            self.show_error(f"{field.capitalize()}: {first['msg']}")
            self._set_switch(False)
            return
        self._remember_key(config.api_key)
        self._remember_fields(config)
        self._set_switch(True)
        self.runner.start(config)
        self._set_state("Starting…", editable=False)

    def stop(self) -> None:
        if self.runner.running:
            self.runner.stop()
            self._set_state("Stopping…", editable=False)

    def shutdown(self) -> None:
        """Stop the server and wait for it: the app is quitting. Safe to call twice."""
        self.runner.shutdown()

    @Slot(bool)
    def _on_switch(self, on: bool) -> None:
        if on:
            self.start()
        else:
            self.stop()

    def _set_switch(self, on: bool) -> None:
        with _signals_blocked(self.switch):
            self.switch.setChecked(on)

    def _set_state(self, text: str, *, editable: bool) -> None:
        self.state_label.setText(text)
        self.form.setEnabled(editable)
        self.switch.setEnabled(self.runner.state in ("off", "on"))

    @Slot(str)
    def _on_started(self, url: str) -> None:
        self.address.setText(url)
        self._set_state("On", editable=False)
        self._refresh_examples()
        self.status_message.emit(f"The server listens on {url}")

    @Slot()
    def _on_stopped(self) -> None:
        self._set_switch(False)
        self._set_state("Off", editable=True)
        self.address.clear()
        self.active_clients = 0
        self._show_counters()
        self._refresh_examples()

    @Slot(str)
    def show_error(self, message: str) -> None:
        """One line above the fields (empty: hide it)."""
        line = message.splitlines()[0] if message else ""
        self.error.setText(line)
        self.error.setToolTip(message)
        self.error.setVisible(bool(line))

    # -- what the server reports ------------------------------------------------------
    @Slot(object)
    def _add_record(self, record: RequestRecord) -> None:
        bar = self.log_view.verticalScrollBar()
        following = bar.value() >= bar.maximum() - 2
        self.log_model.add(record)
        self.total_requests += 1
        self._show_counters()
        if following:
            self.log_view.scrollToBottom()

    @Slot(object)
    def _show_stats(self, stats: ServerStats) -> None:
        self.stats = stats
        self.active_clients = stats.active_clients
        self.total_requests = max(self.total_requests, stats.requests_served)
        self._show_counters()

    def _show_counters(self) -> None:
        parts = [f"Active clients: {self.active_clients}", f"Requests: {self.total_requests}"]
        stats = self.stats
        if stats is not None and self.runner.state == "on":
            parts.append(f"Generating: {stats.running}, waiting: {stats.queued}")
            parts.append(f"Model: {stats.model or 'loads on the first request'}")
        self.counters.setText("   ·   ".join(parts))

    # -- examples, copying, the keychain ------------------------------------------------
    def current_example(self) -> str:
        view = self.examples.currentWidget()
        return view.toPlainText() if isinstance(view, QPlainTextEdit) else ""

    @Slot()
    def _refresh_examples(self) -> None:
        url = self.runner.url or f"http://{self._display_host()}:{self.port.value()}"
        key = self.key.text().strip() or None
        for kind, view in self.example_views.items():
            view.setPlainText(example(kind, url, DEFAULT_MODEL, key))

    def _display_host(self) -> str:
        host = self.host.currentText().strip() or DEFAULTS.host
        return "127.0.0.1" if host in ("0.0.0.0", "::") else host

    def _copy(self, text: str) -> None:
        if text:
            QGuiApplication.clipboard().setText(text)
            self.status_message.emit("Copied")

    def _got_stored_key(self, key: str | None) -> None:
        self._stored_key = key
        self._keychain_read = True
        if key and not self.key.text():
            self.key.setText(key)

    def _remember_key(self, key: str | None) -> None:
        if not key or key == self._stored_key:
            return
        self._stored_key = key
        (Task.call(self, lambda: store_api_key(key), key="keychain")
         .on_error(lambda exc: self.status_message.emit(
             f"The key works for this session only: {describe(exc)}"))
         .start())

    # -- quitting ----------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._keychain_asked:  # not at start-up: the keychain may ask the user
            self._keychain_asked = True
            Task.call(self, stored_api_key, key="keychain").on_done(self._got_stored_key).start()
        window = self.window()
        if window is not self and window is not self._watched_window:
            window.installEventFilter(self)  # its close stops the server (see eventFilter)
            self._watched_window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._watched_window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return super().eventFilter(watched, event)


@contextlib.contextmanager
def _signals_blocked(widget: QWidget) -> Any:
    was = widget.blockSignals(True)
    try:
        yield
    finally:
        widget.blockSignals(was)
