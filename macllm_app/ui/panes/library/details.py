"""The chosen model's metadata, its fit estimate at a context length, and measured peaks."""

from __future__ import annotations

from html import escape
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from macllm_app.core.engines.select import installed
from macllm_app.core.errors import describe
from macllm_app.core.units import human_size
from macllm_app.ui.panes.library.table_model import FIT_LABELS, engines_text
from macllm_app.ui.tasks import Task

META_FIELDS = (("name", "Name"), ("architecture", "Architecture"), ("format", "Format"),
               ("quantization", "Quantization"), ("n_params", "Parameters"),
               ("context_length", "Trained context"), ("n_layers", "Layers"),
               ("embedding_length", "Embedding"), ("n_heads", "Heads"),
               ("n_kv_heads", "KV heads"), ("head_dim", "Head size"),
               ("vocab_size", "Vocabulary"), ("has_chat_template", "Chat template"),
               ("engines", "Engines"), ("size_bytes", "Size"), ("path", "Path"))


def _value(key: str, value: Any) -> str:
    if value is None:
        return "?"
    if key == "size_bytes":
        return human_size(value)
    if key == "engines":
        return engines_text(installed(value))
    if key == "n_params":
        return f"{value / 1e6:,.0f} M" if value < 1e9 else f"{value / 1e9:,.2f} B"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def fit_text(fit: dict[str, Any]) -> str:
    return (f"{FIT_LABELS.get(fit['verdict'], '?')}: about {human_size(fit['expected_bytes'])} "
            f"(worst case {human_size(fit['worst_case_bytes'])}) of "
            f"{human_size(fit['available_ram_bytes'])} available")


def measured_text(measured: list[dict[str, Any]]) -> str:
    if not measured:
        return "Not measured yet (load the model once)."
    lines = [f"{human_size(m['peak_bytes'])} peak on {m['engine']} at {m['n_ctx']:,} tokens; "
             f"the estimate was {human_size(m['estimate_bytes'])} ({m['error']:+.0%})"
             for m in measured[-3:]]
    return "\n".join(lines)


class DetailsPanel(QWidget):
    loaded = Signal(object)  # the details dict of core.library.listing.model_details

    def __init__(self, n_ctx: int) -> None:
        super().__init__()
        self.setObjectName("libraryDetails")
        self._path: str | None = None
        self.details: dict[str, Any] | None = None
        layout = QVBoxLayout(self)
        self.title = QLabel("Choose a model")
        self.title.setObjectName("detailsTitle")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        form = QFormLayout()
        self.labels: dict[str, QLabel] = {}
        for key, label in META_FIELDS:
            value = QLabel("")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.labels[key] = value
            form.addRow(label, value)
        self.ctx = QSpinBox()
        self.ctx.setRange(256, 1 << 20)
        self.ctx.setSingleStep(1024)
        self.ctx.setValue(n_ctx)
        self.ctx.setSuffix(" tokens")
        self.ctx.editingFinished.connect(self._reload)
        form.addRow("Context for estimate", self.ctx)
        self.fit = QLabel("")
        self.fit.setObjectName("fitEstimate")
        self.fit.setWordWrap(True)
        form.addRow("Memory estimate", self.fit)
        self.measured = QLabel("")
        self.measured.setObjectName("measuredPeak")
        self.measured.setWordWrap(True)
        form.addRow("Measured", self.measured)
        layout.addLayout(form)
        layout.addStretch(1)
        self._layout = layout

    def add_section(self, widget: QWidget) -> None:
        """Show `widget` under the details (before the trailing stretch)."""
        self._layout.insertWidget(self._layout.count() - 1, widget)

    def show_model(self, path: str | None) -> None:
        self._path = path
        self.details = None
        if path is None:
            self.title.setText("Choose a model")
            for label in (*self.labels.values(), self.fit, self.measured):
                label.clear()
            return
        self.title.setText("Reading…")
        self._reload()

    @Slot()
    def _reload(self) -> None:
        if self._path is None:
            return
        from macllm_app.core.library.listing import model_details

        path, n_ctx = self._path, self.ctx.value()
        (Task.call(self, lambda: model_details(path, n_ctx), key="details",
                   name="model details")
         .on_done(self._show)
         .on_error(lambda error: self.title.setText(describe(error)))
         .start())

    def _show(self, details: dict[str, Any]) -> None:
        self.details = details
        meta = details["metadata"]
        self.title.setText(f"<b>{escape(str(meta['name']))}</b>")
        for key, label in self.labels.items():
            label.setText(_value(key, meta.get(key)))
        self.fit.setText(fit_text(details["fit"]))
        self.measured.setText(measured_text(details["measured"]))
        self.loaded.emit(details)
