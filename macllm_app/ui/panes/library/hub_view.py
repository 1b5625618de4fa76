"""Browse the Hugging Face Hub: search (GGUF / MLX, most downloaded first), a repo's files,
download with progress. Every Hub call runs as a task."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.errors import describe
from macllm_app.core.units import human_size
from macllm_app.ui.panes.library.downloads import DownloadBar, PausedDownloads
from macllm_app.ui.panes.library.token_box import TokenBox
from macllm_app.ui.tasks import Task

FORMATS = (("All formats", None), ("GGUF", "gguf"), ("MLX", "mlx"))


def _table(headers: list[str], name: str) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(headers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    return table


def _fill(table: QTableWidget, rows: list[list[str]]) -> None:
    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            table.setItem(r, c, QTableWidgetItem(text))


class HubBrowser(QWidget):
    downloaded = Signal(object)
    message = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict[str, Any]] = []
        self.repo: dict[str, Any] | None = None
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.query = QLineEdit()
        self.query.setObjectName("hubQuery")
        self.query.setPlaceholderText("Search the Hugging Face Hub")
        self.query.returnPressed.connect(self.search)
        self.format = QComboBox()
        self.format.setObjectName("hubFormat")
        for label, value in FORMATS:
            self.format.addItem(label, value)
        self.format.setCurrentIndex(1)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        bar.addWidget(self.query, 1)
        bar.addWidget(self.format)
        bar.addWidget(self.search_button)
        layout.addLayout(bar)

        self.result_table = _table(["Repository", "Downloads", "Likes", "Formats"], "hubResults")
        self.result_table.itemSelectionChanged.connect(self._open_selected_repo)
        self.file_table = _table(["File", "Size", "Quant"], "hubFiles")
        self.file_table.itemSelectionChanged.connect(self._update_download_button)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.result_table)
        files = QWidget()
        files_layout = QVBoxLayout(files)
        files_layout.setContentsMargins(0, 0, 0, 0)
        self.repo_title = QLabel("Choose a repository")
        self.repo_title.setWordWrap(True)
        files_layout.addWidget(self.repo_title)
        files_layout.addWidget(self.file_table, 1)
        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("hubDownload")
        self.download_button.clicked.connect(self.download)
        files_layout.addWidget(self.download_button)
        split.addWidget(files)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout.addWidget(split, 1)
        self.downloads = DownloadBar()
        self.downloads.downloaded.connect(self._on_downloaded)
        self.downloads.message.connect(self.message)
        self.downloads.stopped.connect(self.refresh_paused)
        layout.addWidget(self.downloads)
        self.paused = PausedDownloads(self.downloads)
        layout.addWidget(self.paused)
        self.status = QLabel("")
        self.status.setObjectName("hubStatus")
        layout.addWidget(self.status)
        layout.addWidget(TokenBox())
        self._update_download_button()

    # -- search ---------------------------------------------------------------
    @Slot()
    def search(self) -> None:
        from macllm_app.core.library.commands import search

        self.status.setText("Searching…")
        query, fmt = self.query.text().strip(), self.format.currentData()
        (Task.call(self, lambda: search(query, fmt), key="search", name="search the Hub")
         .on_done(self._show_results)
         .on_error(self._failed)
         .start())

    def _show_results(self, results: list[dict[str, Any]]) -> None:
        self.results = results
        _fill(self.result_table, [[r["id"], f"{r['downloads']:,}", f"{r['likes']:,}",
                                   ", ".join(r["formats"]).upper()] for r in results])
        count = len(results)
        self.status.setText(f"{count} model{'s' if count != 1 else ''}" if count
                            else "No models found")

    def _failed(self, error: BaseException) -> None:
        self.status.setText(describe(error))

    # -- repo -----------------------------------------------------------------
    @Slot()
    def _open_selected_repo(self) -> None:
        rows = self.result_table.selectionModel().selectedRows()
        if not rows:
            return
        from macllm_app.core.library.commands import repo_files

        repo_id = self.results[rows[0].row()]["id"]
        self.repo = None
        self.file_table.setRowCount(0)
        self.repo_title.setText(f"{repo_id}: loading files…")
        (Task.call(self, lambda: repo_files(repo_id), key="repo", name="list a Hub repo")
         .on_done(self._show_repo)
         .on_error(self._failed)
         .start())

    def _show_repo(self, repo: dict[str, Any]) -> None:
        self.repo = repo
        kind = "MLX model" if repo["is_mlx"] else f"{len(self._ggufs())} GGUF files"
        self.repo_title.setText(f"<b>{repo['id']}</b> · {kind}")
        _fill(self.file_table, [[f["name"], human_size(f["size"]), f["quant"] or ""]
                                for f in repo["files"]])
        self._update_download_button()

    def _ggufs(self) -> list[dict[str, Any]]:
        return [f for f in (self.repo or {}).get("files", []) if f["name"].endswith(".gguf")]

    def selected_target(self) -> tuple[str, str | None] | None:
        """(repo, GGUF file) for the chosen file, (repo, None) for an MLX repo, else None."""
        if self.repo is None:
            return None
        rows = self.file_table.selectionModel().selectedRows()
        if rows:
            name = self.repo["files"][rows[0].row()]["name"]
            if name.endswith(".gguf"):
                return self.repo["id"], name
        if self.repo["is_mlx"]:
            return self.repo["id"], None
        return None

    @Slot()
    def _update_download_button(self) -> None:
        self.download_button.setEnabled(self.selected_target() is not None)

    @Slot()
    def download(self) -> None:
        target = self.selected_target()
        if target is not None and not self.downloads.is_running():
            self.downloads.start(*target)

    @Slot()
    def refresh_paused(self) -> None:
        self.paused.refresh()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.paused.refresh()

    @Slot(object)
    def _on_downloaded(self, entry: object) -> None:
        self.paused.refresh()
        self.downloaded.emit(entry)
