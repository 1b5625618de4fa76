"""The Quantize pane: choose a source (from the library, by dropping a file or folder, or
from the Library's "Quantize…"), an engine and a type (each listed with its bits per
weight, size and fit on this machine), optionally an importance matrix; start, follow
the progress, cancel. The result joins the library; Measure Quality puts it in the
table of measured variants beside its siblings, with the plot and the RAM guide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.errors import UserError, describe
from macllm_app.core.quantize.choices import SourceSummary, default_dest, quant_choices
from macllm_app.core.types import ENGINE_TITLES, ENGINES, EngineName
from macllm_app.ui.panes.quantize.advanced import AdvancedLlamaOptions, AdvancedOptions
from macllm_app.ui.panes.quantize.jobs import QuantizeJobs, QuantizeRequest
from macllm_app.ui.panes.quantize.quality_view import QualityView
from macllm_app.ui.panes.quantize.type_table import TypeTable
from macllm_app.ui.tasks import Task
from macllm_app.ui.widgets.job_strip import JobStrip

DEFAULT_TYPE = {"llama.cpp": "Q4_K_M", "mlx": "4-bit"}
IMATRIX_NONE, IMATRIX_COMPUTE, IMATRIX_FILE = range(3)


class QuantizePane(QWidget):
    load_requested = Signal(str)    # a model path for the chat
    compare_requested = Signal(str, str)  # (quantized model, its source) for the chat
    status_message = Signal(str)
    added = Signal(str)             # a model the library gained
    summary_shown = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("quantizePane")
        self.setAcceptDrops(True)
        self.summary: SourceSummary | None = None
        self.source: str | None = None
        self.last_output: str | None = None
        self.imatrix_file: str | None = None
        self._listed_once = False

        self.sources = QComboBox()
        self.sources.setObjectName("quantizeSource")
        self.sources.setMinimumWidth(320)
        self.sources.activated.connect(self._source_chosen)
        choose = QPushButton("Choose…")
        choose.setObjectName("quantizeChoose")
        choose.clicked.connect(self._choose_file)
        self.engine = QComboBox()
        self.engine.setObjectName("quantizeEngine")
        for name in ENGINES:
            self.engine.addItem(ENGINE_TITLES[name], name)
        self.engine.currentIndexChanged.connect(self._show_choices)
        self.group = QComboBox()
        self.group.setObjectName("quantizeGroup")
        for size in (32, 64, 128):
            self.group.addItem(f"groups of {size}", size)
        self.group.setCurrentIndex(1)
        self.group.currentIndexChanged.connect(self._show_choices)
        self.imatrix = QComboBox()
        self.imatrix.setObjectName("quantizeImatrix")
        self.imatrix.addItems(["None", "Compute from the shipped calibration text",
                               "Use a file…"])
        self.imatrix.activated.connect(self._imatrix_chosen)
        self.requantize = QCheckBox("Allow requantizing a quantized source")
        self.requantize.setObjectName("quantizeRequantize")
        self.advanced = AdvancedLlamaOptions()
        self.advanced.changed.connect(self._update)
        self._advanced_error = ""
        self.types = TypeTable()
        self.types.selectionModel().selectionChanged.connect(self._update)
        self.dest = QLabel("")
        self.dest.setObjectName("quantizeDest")
        self.dest.setWordWrap(True)
        self.start_button = QPushButton("Quantize")
        self.start_button.setObjectName("quantizeStart")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.measure_button = QPushButton("Measure Quality")
        self.measure_button.setObjectName("quantizeMeasure")
        self.measure_button.setToolTip("Perplexity and KL divergence against the source "
                                       "(a quick measurement: two chunks of 512 tokens)")
        self.measure_button.clicked.connect(self.measure_last)
        self.load_button = QPushButton("Load into Chat")
        self.load_button.setObjectName("quantizeLoad")
        self.load_button.clicked.connect(self._load_last)
        self.compare_button = QPushButton("Compare with Source in Chat")
        self.compare_button.setObjectName("quantizeCompare")
        self.compare_button.setToolTip("Load the quantized model into the chat; under each "
                                       "reply, run the same message on its source model")
        self.compare_button.clicked.connect(self._compare_last)
        self.result = QLabel("")
        self.result.setObjectName("quantizeResult")
        self.result.setWordWrap(True)
        self.strip = JobStrip()
        self.jobs = QuantizeJobs(self.strip, self)
        self.jobs.quantized.connect(self._quantized)
        self.jobs.measured.connect(self._measured)
        self.jobs.failed.connect(self._failed)
        self.jobs.cancelled.connect(lambda: self._say("Cancelled; nothing was written."))
        self.jobs.busy_changed.connect(self._update)
        self.quality = QualityView()

        source_row = QHBoxLayout()
        source_row.addWidget(self.sources, 1)
        source_row.addWidget(choose)
        engine_row = QHBoxLayout()
        engine_row.addWidget(self.engine)
        engine_row.addWidget(self.group)
        engine_row.addStretch(1)
        form = QFormLayout()
        form.addRow("Source:", source_row)
        form.addRow("Engine:", engine_row)
        form.addRow("Importance matrix:", self.imatrix)
        form.addRow("", self.requantize)
        form.addRow(self.advanced)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.measure_button)
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.compare_button)
        buttons.addStretch(1)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(form)
        top_layout.addWidget(self.types, 1)
        top_layout.addWidget(self.dest)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.strip)
        top_layout.addWidget(self.result)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.quality)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        title = QLabel("<h2>Quantize</h2>")
        layout.addWidget(title)
        layout.addWidget(split, 1)
        self._update()

    # -- the source ---------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._listed_once:
            self._listed_once = True
            self.refresh_sources()

    @Slot()
    def refresh_sources(self) -> None:
        from macllm_app.core.library.commands import list_models

        (Task.call(self, lambda: list_models(scan_stores=False), key="sources",
                   name="list models")
         .on_done(self._show_sources)
         .on_error(lambda error: self._say(describe(error)))
         .start())

    def _show_sources(self, rows: list[dict[str, Any]]) -> None:
        self.sources.clear()
        for row in rows:
            self.sources.addItem(f"{row['name']} ({row['format'].upper()}, "
                                 f"{row['quantization']})", row["path"])
        if self.source is not None:
            self._select_source_item(self.source)
        elif rows:
            self.sources.setCurrentIndex(0)
            self.set_source(rows[0]["path"])

    def _select_source_item(self, path: str) -> None:
        index = self.sources.findData(path)
        if index < 0:
            self.sources.addItem(Path(path).name, path)
            index = self.sources.count() - 1
        self.sources.setCurrentIndex(index)

    @Slot(int)
    def _source_chosen(self, index: int) -> None:
        path = self.sources.itemData(index)
        if path:
            self.set_source(path)

    def set_source(self, path: str) -> None:
        """Quantize `path` next (from the list, a drop or the Library's action)."""
        self.source = path
        self._select_source_item(path)
        self._say("")
        self._refresh_summary()

    def _refresh_summary(self) -> None:
        from macllm_app.core.quantize.choices import summarize_source

        source = self.source
        if source is None:
            return
        group = self._group_size()
        (Task.call(self, lambda: summarize_source(source, group_size=group), key="summary",
                   name="read the source")
         .on_done(lambda summary: self._show_summary(summary) if self.source == source
                  else None)
         .on_error(self._source_failed)
         .start())

    def _show_summary(self, summary: SourceSummary) -> None:
        self.summary = summary
        engine: EngineName = "mlx" if summary.meta.format == "mlx" else "llama.cpp"
        self.engine.blockSignals(True)
        self.engine.setCurrentIndex(ENGINES.index(engine))
        self.engine.blockSignals(False)
        self._show_choices()
        self.quality.show_rows(summary.measured, summary.sizes, summary.meta.n_params,
                               summary.advice.text)
        self.summary_shown.emit()

    def _source_failed(self, error: BaseException) -> None:
        self.summary = None
        self.types.choices.set_rows([])
        self._say(describe(error))
        self._update()

    @Slot()
    def _choose_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Model to quantize", "",
                                              "GGUF models (*.gguf);;All files (*)")
        if name:
            self.set_source(name)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.set_source(paths[0])
            event.acceptProposedAction()

    # -- the choice -----------------------------------------------------------------
    def current_engine(self) -> EngineName:
        engine: EngineName = self.engine.currentData() or "llama.cpp"
        return engine

    def _group_size(self) -> int:
        return int(self.group.currentData() or 64)

    @Slot()
    def _show_choices(self) -> None:
        if self.summary is None:
            return
        engine = self.current_engine()
        rows = (self.summary.choices[engine] if engine == "llama.cpp" or self._group_size() == 64
                else quant_choices(self.summary.meta, engine, group_size=self._group_size()))
        self.types.show_choices(rows, DEFAULT_TYPE[engine])
        self._update()

    @Slot(int)
    def _imatrix_chosen(self, index: int) -> None:
        if index == IMATRIX_FILE:
            name, _ = QFileDialog.getOpenFileName(
                self, "Importance matrix", "", "Importance matrices (*.gguf *.dat);;All (*)")
            if name:
                self.imatrix_file = name
                self.imatrix.setItemText(IMATRIX_FILE, f"{Path(name).name}")
            else:
                self.imatrix.setCurrentIndex(IMATRIX_NONE)
        self._update()

    def request(self) -> QuantizeRequest | None:
        """What Quantize would do now."""
        from macllm_app.core import paths

        choice = self.types.chosen()
        if self.source is None or choice is None:
            return None
        dest = default_dest(Path(self.source), choice, paths.models_dir())
        stem, n = dest, 2
        while dest.exists():
            dest = stem.with_name(f"{stem.stem}-{n}{stem.suffix}")
            n += 1
        llama = choice.engine == "llama.cpp"
        mode = self.imatrix.currentIndex() if llama else IMATRIX_NONE
        self._advanced_error = ""
        try:
            advanced = self.advanced.options() if llama else AdvancedOptions()
        except UserError as exc:
            self._advanced_error = str(exc)
            return None
        return QuantizeRequest(
            self.source, str(dest), choice, self._group_size(),
            imatrix=self.imatrix_file if mode == IMATRIX_FILE else None,
            compute_imatrix=mode == IMATRIX_COMPUTE,
            allow_requantize=llama and self.requantize.isChecked(), advanced=advanced)

    @Slot()
    def _update(self) -> None:
        busy = self.jobs.busy
        llama = self.current_engine() == "llama.cpp"
        self.group.setVisible(not llama)
        self.imatrix.setEnabled(llama and not busy)
        self.requantize.setVisible(llama)
        self.advanced.setVisible(llama)
        request = self.request()
        self.start_button.setEnabled(request is not None and not busy)
        self.dest.setText(f"Writes {request.dest}, added to the library." if request
                          else self._advanced_error)
        done = self.last_output is not None and not busy
        self.measure_button.setEnabled(done)
        self.load_button.setEnabled(done)
        self.compare_button.setEnabled(done and self.source is not None)

    # -- running ------------------------------------------------------------------
    @Slot()
    def start(self) -> None:
        request = self.request()
        if request is None or self.jobs.busy:
            return
        self._say("")
        self.jobs.quantize(request)

    @Slot()
    def measure_last(self) -> None:
        if self.last_output is None or self.source is None:
            return
        self._say("")
        self.jobs.measure(self.last_output, self.source,
                          {"text": "resources/texts/evaluation.txt", "source": self.source})

    def _load_last(self) -> None:
        if self.last_output is not None:
            self.load_requested.emit(self.last_output)

    def _compare_last(self) -> None:
        if self.last_output is not None and self.source is not None:
            self.compare_requested.emit(self.last_output, self.source)

    def _quantized(self, entry: dict[str, Any]) -> None:
        self.last_output = str(entry["path"])
        self._say(f"Added {entry['name']} to the library. Measure its quality, or load it "
                  "into the chat.")
        self.added.emit(self.last_output)
        self.refresh_sources()
        self._update()

    def _measured(self, row: dict[str, Any]) -> None:
        self._say(f"{Path(row['model']).name}: ΔPPL {row['delta_ppl']:+.4f}, "
                  f"KLD {row['kld_mean']:.5f}, same top {100 * row['same_top']:.1f} %")
        self._refresh_summary()

    def _failed(self, message: str) -> None:
        self._say(message)
        self._update()

    def _say(self, text: str) -> None:
        self.result.setText(text)
        if text:
            self.status_message.emit(text)
