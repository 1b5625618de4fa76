"""The Library pane: the model table with a filter, details, actions, drops, and the Hub tab."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QPoint, QProcess, QSortFilterProxyModel, Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.errors import describe
from macllm_app.core.platform import current as current_platform
from macllm_app.ui.panes.library.conversions import ConversionActions
from macllm_app.ui.panes.library.details import DetailsPanel
from macllm_app.ui.panes.library.hub_view import HubBrowser
from macllm_app.ui.panes.library.importing import Importer, accept_file_drop
from macllm_app.ui.panes.library.table_model import ROW_ROLE, SORT_ROLE, LibraryTableModel
from macllm_app.ui.tasks import Task
from macllm_app.ui.widgets.job_strip import JobStrip


class LibraryPane(QWidget):
    load_requested = Signal(str)  # a model path for the chat's engine
    quantize_requested = Signal(str)  # a model path for the Quantize pane
    finetune_requested = Signal(str)  # a model path for the Fine-tune pane
    status_message = Signal(str)
    refreshed = Signal()

    def __init__(self, n_ctx: Callable[[], int]) -> None:
        super().__init__()
        self.setObjectName("libraryPane")
        self.setAcceptDrops(True)
        self._n_ctx = n_ctx
        self._listed_once = False
        self._shown_path: str | None = None
        self._select_after_refresh: str | None = None
        self.context_menu: QMenu | None = None
        self.import_errors: list[str] = []

        self.model = LibraryTableModel()
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setObjectName("libraryTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.table.doubleClicked.connect(self.load_selected)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)

        self.filter = QLineEdit()
        self.filter.setObjectName("libraryFilter")
        self.filter.setPlaceholderText("Filter models")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        import_button = QPushButton("Import…")
        import_button.clicked.connect(self._choose_files)
        refresh_button = QPushButton("Refresh")
        refresh_button.clicked.connect(self.refresh)
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(import_button)
        top.addWidget(refresh_button)

        self.details = DetailsPanel(n_ctx())
        self.job_strip = JobStrip()
        self.conversions = ConversionActions(self, self.job_strip)
        self.conversions.added.connect(self._on_added)
        self.conversions.message.connect(self.status_message)
        self.details.loaded.connect(self.conversions.set_details)
        self.details.add_section(self.conversions.section)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.details)
        scroll.setMaximumWidth(440)
        split.addWidget(scroll)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        self.load_button = QPushButton("Load into Chat")
        self.load_button.setObjectName("loadIntoChat")
        self.load_button.clicked.connect(self.load_selected)
        self.reveal_button = QPushButton(
            "Reveal in Finder" if sys.platform == "darwin" else "Show in Files")
        self.reveal_button.clicked.connect(self.reveal_selected)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setObjectName("deleteModel")
        self.delete_button.clicked.connect(self.delete_selected)
        actions = QHBoxLayout()
        actions.addWidget(self.load_button)
        actions.addWidget(self.reveal_button)
        actions.addStretch(1)
        actions.addWidget(self.delete_button)

        models = QWidget()
        models_layout = QVBoxLayout(models)
        models_layout.addLayout(top)
        models_layout.addWidget(split, 1)
        models_layout.addLayout(actions)
        models_layout.addWidget(self.job_strip)
        self.hub = HubBrowser()
        self.hub.downloaded.connect(lambda _entry: self.refresh())
        self.hub.message.connect(self.status_message)
        self.tabs = QTabWidget()
        self.tabs.addTab(models, "Models")
        self.tabs.addTab(self.hub, "Hugging Face")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

        self.importer = Importer(self)
        self.importer.done.connect(self._on_imported)
        self._on_selection()

    # -- listing --------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._listed_once:
            self._listed_once = True
            self.refresh()

    @Slot()
    def refresh(self) -> None:
        from macllm_app.core.library.listing import library_rows

        n_ctx = self._n_ctx()
        (Task.call(self, lambda: library_rows(n_ctx), key="list", name="list models")
         .on_done(self._show_rows)
         .on_error(lambda error: self.status_message.emit(describe(error)))
         .start())

    def _show_rows(self, rows: list[dict[str, Any]]) -> None:
        chosen = self.selected_row()
        wanted = self._select_after_refresh or (chosen["path"] if chosen else None)
        self._select_after_refresh = None
        self.model.set_rows(rows)
        if wanted is not None:
            self.select_path(wanted)
        self._on_selection()
        self.refreshed.emit()

    def select_path(self, path: str) -> bool:
        for r in range(self.proxy.rowCount()):
            if self.proxy.index(r, 0).data(ROW_ROLE)["path"] == path:
                self.table.selectRow(r)
                return True
        return False

    def selected_row(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(ROW_ROLE) if rows else None

    @Slot()
    def _on_selection(self) -> None:
        row = self.selected_row()
        self.load_button.setEnabled(row is not None)
        self.reveal_button.setEnabled(row is not None)
        self.delete_button.setVisible(bool(row and row["owned"]))
        self.conversions.set_row(row)
        path = row["path"] if row else None
        if path != self._shown_path:
            self._shown_path = path
            self.details.show_model(path)

    @Slot(str)
    def _on_added(self, path: str) -> None:
        """A conversion added a model: list it and select it."""
        self._select_after_refresh = path
        self.refresh()

    @Slot(QPoint)
    def _show_context_menu(self, pos: QPoint) -> None:
        menu = self.context_menu_at(pos)
        if menu is not None:
            menu.aboutToHide.connect(menu.deleteLater)
            menu.popup(self.table.viewport().mapToGlobal(pos))

    def context_menu_at(self, pos: QPoint) -> QMenu | None:
        """Select the row at `pos` (table viewport coordinates) and build its menu."""
        index = self.table.indexAt(pos)
        if not index.isValid():
            return None
        self.table.selectRow(index.row())
        row = self.selected_row()
        if row is None:
            return None
        menu = QMenu(self)
        menu.setObjectName("libraryContextMenu")
        menu.addAction("Load into Chat", self.load_selected)
        menu.addAction(self.reveal_button.text(), self.reveal_selected)
        menu.addSeparator()
        menu.addAction(self.conversions.convert_action if row["format"] == "gguf"
                       else self.conversions.export_action)
        quantize = menu.addAction("Quantize…", lambda: self.quantize_requested.emit(row["path"]))
        quantize.setObjectName("quantizeModel")
        finetune = menu.addAction("Fine-tune…",
                                  lambda: self.finetune_requested.emit(row["path"]))
        finetune.setObjectName("finetuneModel")
        if row["owned"]:
            menu.addSeparator()
            menu.addAction("Delete…", self.delete_selected)
        self.context_menu = menu
        return menu

    # -- actions --------------------------------------------------------------
    def _confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    @Slot()
    def load_selected(self) -> None:
        row = self.selected_row()
        if row is not None:  # the engine's guardrail asks first if it won't fit
            self.load_requested.emit(row["path"])

    @Slot()
    def reveal_selected(self) -> None:
        row = self.selected_row()
        if row is not None:
            program, *args = current_platform().reveal_command(row["path"])
            QProcess.startDetached(program, args)

    @Slot()
    def delete_selected(self) -> None:
        row = self.selected_row()
        if row is None or not row["owned"]:
            return
        if not self._confirm("Delete model?", f"Delete {row['name']} from disk? "
                             "This removes MacLLM's own copy; it cannot be undone."):
            return
        from macllm_app.core.library.listing import delete_owned

        path = row["path"]

        def deleted(name: str) -> None:
            self.status_message.emit(f"Deleted {name}")
            self.refresh()

        (Task.call(self, lambda: delete_owned(path), name="delete model")
         .on_done(deleted)
         .on_error(lambda error: self.status_message.emit(describe(error)))
         .start())

    # -- import ---------------------------------------------------------------
    @Slot()
    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import models", "",
                                                "GGUF models (*.gguf);;All files (*)")
        self.import_paths(files)

    def import_paths(self, paths: list[str]) -> None:
        """Ask Link vs Copy, then import each path on its own (a bad one spoils nothing)."""
        self.importer.ask(paths)

    @Slot(object)
    def _on_imported(self, results: object) -> None:
        if not isinstance(results, list):
            return
        self.import_errors = [str(r["error"]).splitlines()[0] for r in results if "error" in r]
        added = [r for r in results if "error" not in r]
        if added:
            self.status_message.emit(f"Imported {', '.join(r['name'] for r in added)}")
        if self.import_errors:
            box = QMessageBox(QMessageBox.Icon.Warning, "Some files were not imported",
                              "\n".join(self.import_errors), QMessageBox.StandardButton.Ok,
                              self)
            box.setObjectName("importErrors")
            box.open()
        self.refresh()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        accept_file_drop(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if paths := accept_file_drop(event):
            self.import_paths(paths)
