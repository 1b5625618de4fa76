"""What a run trains: the base model (from the library, a file, or a drop) and the
datasets (a JSONL training file, dropped, chosen or one of the examples MacLLM ships,
and an optional validation file; without one, a tenth of the training set is set
aside)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QToolButton,
    QWidget,
)

from macllm_app.core.resources import EXAMPLE_DATASETS, resource

NO_TRAIN = "Drop a .jsonl file on this pane, or choose one."
NO_VALID = "None: a tenth of the training set is set aside for validation."
MODEL_FILTER = "GGUF models (*.gguf);;An MLX model's config.json (config.json);;All files (*)"


class SourcesBox(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.base: str | None = None
        self.train_file: str | None = None
        self.valid_file: str | None = None
        self.models = QComboBox()
        self.models.setObjectName("finetuneBase")
        self.models.setMinimumWidth(200)
        self.models.activated.connect(self._model_chosen)
        choose_model = QPushButton("Choose…")
        choose_model.setObjectName("finetuneChooseBase")
        choose_model.clicked.connect(self._choose_model)
        self.train_label = QLabel(NO_TRAIN)
        self.train_label.setObjectName("finetuneTrainFile")
        self.train_label.setWordWrap(True)
        choose_train = QPushButton("Choose…")
        choose_train.setObjectName("finetuneChooseTrain")
        choose_train.clicked.connect(self._choose_train)
        examples = QToolButton()
        examples.setObjectName("finetuneExamples")
        examples.setText("Examples")
        examples.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.examples_menu = QMenu(examples)
        for name in EXAMPLE_DATASETS:
            self.examples_menu.addAction(Path(name).name, self._example_chooser(name))
        examples.setMenu(self.examples_menu)
        self.valid_label = QLabel(NO_VALID)
        self.valid_label.setObjectName("finetuneValidFile")
        self.valid_label.setWordWrap(True)
        choose_valid = QPushButton("Choose…")
        choose_valid.setObjectName("finetuneChooseValid")
        choose_valid.clicked.connect(self._choose_valid)
        self.clear_valid = QPushButton("Clear")
        self.clear_valid.setObjectName("finetuneClearValid")
        self.clear_valid.clicked.connect(lambda: self.set_valid_file(None))
        self.clear_valid.setEnabled(False)

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Base model:", _row(self.models, choose_model))
        form.addRow("Training data:", _row(self.train_label, choose_train, examples))
        form.addRow("Validation data:", _row(self.valid_label, choose_valid, self.clear_valid))

    # -- choosing ---------------------------------------------------------------------
    def show_models(self, rows: list[dict[str, Any]]) -> None:
        """The library's models, as the Quantize pane lists them."""
        self.models.clear()
        for row in rows:
            self.models.addItem(f"{row['name']} ({row['format'].upper()}, "
                                f"{row['quantization']})", row["path"])
        if self.base is not None:
            self._select_model(self.base)
        elif rows:
            self.set_base(rows[0]["path"])

    def set_base(self, path: str) -> None:
        self.base = path
        self._select_model(path)
        self.changed.emit()

    def set_train_file(self, path: str) -> None:
        self.train_file = path
        self.train_label.setText(path)
        self.train_label.setToolTip(path)
        self.changed.emit()

    def set_valid_file(self, path: str | None) -> None:
        self.valid_file = path
        self.valid_label.setText(path or NO_VALID)
        self.clear_valid.setEnabled(path is not None)
        self.changed.emit()

    def accept_paths(self, paths: list[str]) -> bool:
        """Dropped paths: a .jsonl file is the training data (a second one the validation
        data); anything else is the base model."""
        used = False
        datasets = [p for p in paths if p.lower().endswith(".jsonl")]
        models = [p for p in paths if not p.lower().endswith(".jsonl")]
        if models:
            self.set_base(models[0])
            used = True
        if datasets:
            self.set_train_file(datasets[0])
            if len(datasets) > 1:
                self.set_valid_file(datasets[1])
            used = True
        return used

    def _select_model(self, path: str) -> None:
        index = self.models.findData(path)
        if index < 0:
            self.models.addItem(Path(path).name, path)
            index = self.models.count() - 1
        self.models.setCurrentIndex(index)

    @Slot(int)
    def _model_chosen(self, index: int) -> None:
        path = self.models.itemData(index)
        if path and path != self.base:
            self.set_base(path)

    def _example_chooser(self, name: str) -> Callable[[], None]:
        return lambda: self.set_train_file(str(resource(name)))

    @Slot()
    def _choose_model(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Base model", "", MODEL_FILTER)
        if name:
            chosen = Path(name)
            self.set_base(str(chosen.parent if chosen.name == "config.json" else chosen))

    @Slot()
    def _choose_train(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Training data", "",
                                              "JSONL datasets (*.jsonl);;All files (*)")
        if name:
            self.set_train_file(name)

    @Slot()
    def _choose_valid(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Validation data", "",
                                              "JSONL datasets (*.jsonl);;All files (*)")
        if name:
            self.set_valid_file(name)


def _row(*widgets: QWidget) -> QHBoxLayout:
    """The first widget takes the room; the buttons follow it."""
    row = QHBoxLayout()
    for i, widget in enumerate(widgets):
        row.addWidget(widget, 1 if i == 0 else 0)
    return row
