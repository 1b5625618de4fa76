"""The run's parameters: a preset that fills the form, the method (each listed with its
memory estimate once the pane has one), and every `TrainConfig` field, grouped as
mlx-lm's `lora` command groups them. The form holds no rules: `TrainConfig.check`
says what is out of range, in one line."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.finetune.config import (
    METHOD_LABELS,
    METHODS,
    OPTIMIZERS,
    PRESETS,
    ConfigError,
    Method,
    TrainConfig,
    with_method,
)

DEFAULT_PRESET = "Quick try"
#: (field, label, minimum, maximum, text shown at the minimum)
_INTS: dict[str, tuple[str, int, int, str]] = {
    "rank": ("Rank", 1, 1024, ""),
    "num_layers": ("Layers", -1, 4096, "all"),
    "batch_size": ("Batch size", 1, 4096, ""),
    "grad_accumulation": ("Accumulation", 1, 1024, ""),
    "iters": ("Iterations", 1, 10_000_000, ""),
    "max_seq_length": ("Max length", 16, 131072, ""),
    "warmup_steps": ("Warm-up steps", 0, 1_000_000, ""),
    "steps_per_eval": ("Validate every", 1, 1_000_000, ""),
    "val_batches": ("Validation batches", -1, 100_000, "all"),
    "save_every": ("Checkpoint every", 1, 1_000_000, ""),
    "seed": ("Seed", 0, 2**31 - 1, ""),
}
#: (field, label, minimum, maximum, decimals, text shown at the minimum)
_FLOATS: dict[str, tuple[str, float, float, int, str]] = {
    "scale": ("Scale", 0.01, 10_000.0, 2, ""),
    "dropout": ("Dropout", 0.0, 0.99, 2, ""),
    "epochs": ("Epochs", 0.0, 10_000.0, 2, "off"),
}
_RATES = {"learning_rate": "Learning rate", "min_learning_rate": "Final learning rate"}
_BOOLS = {"cosine_decay": "Cosine decay", "grad_checkpoint": "Gradient checkpointing",
          "mask_prompt": "Mask prompts"}
TIPS = {
    "rank": "The adapter's rank: more is more capacity, more memory",
    "scale": "LoRA's scale (alpha): how strongly the adapter acts",
    "num_layers": "How many layers are trained, counted from the last (all: every layer)",
    "grad_accumulation": "Batches whose gradients are summed before each update",
    "epochs": "Passes over the training set; when set, it decides the iterations",
    "max_seq_length": "Longer samples are cut short to this many tokens",
    "min_learning_rate": "Where cosine decay ends",
    "grad_checkpoint": "Recompute activations in the backward pass: less memory, slower",
    "mask_prompt": "Learn the replies only: the prompts' tokens add nothing to the loss",
    "steps_per_eval": "Steps between validation losses",
    "val_batches": "Validation batches per evaluation (all: the whole validation set)",
    "save_every": "Steps between checkpoints (a stopped or killed run resumes from the last)",
}
FIELD_WIDTH = (70, 120)  # spin boxes' minimum and maximum width
_GROUPS = (
    ("Adapter", ("rank", "scale", "dropout", "num_layers")),
    ("Schedule", ("learning_rate", "min_learning_rate", "warmup_steps", "cosine_decay",
                  "optimizer")),
    ("Data", ("batch_size", "grad_accumulation", "iters", "epochs", "max_seq_length",
              "mask_prompt", "grad_checkpoint")),
    ("Checks", ("steps_per_eval", "val_batches", "save_every", "seed")),
)


def _rate_text(value: float) -> str:
    return f"{value:g}"


def _label(name: str) -> str:
    """A field's row label (a check box carries its own)."""
    if name in _BOOLS:
        return ""
    if name in _INTS:
        return f"{_INTS[name][0]}:"
    if name in _FLOATS:
        return f"{_FLOATS[name][0]}:"
    return f"{_RATES.get(name, name.capitalize())}:"


class TrainForm(QWidget):
    """Edits one `TrainConfig`; `changed` fires on every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("finetuneForm")
        self._base = PRESETS[DEFAULT_PRESET]  # fields the form does not show come from here
        self._filling = False
        self.preset = QComboBox()
        self.preset.setObjectName("finetunePreset")
        self.preset.addItems(list(PRESETS))
        self.preset.activated.connect(self._preset_chosen)
        self.method = QComboBox()
        self.method.setObjectName("finetuneMethod")
        for method in METHODS:
            self.method.addItem(METHOD_LABELS[method], method)
        self.method.activated.connect(self._method_chosen)
        self.fields: dict[str, QWidget] = {}
        for name, (_text, low, high, special) in _INTS.items():
            spin = QSpinBox()
            spin.setRange(low, high)
            spin.setSpecialValueText(special)
            spin.valueChanged.connect(self._edited)
            self.fields[name] = spin
        for name, (_text, flow, fhigh, decimals, special) in _FLOATS.items():
            box = QDoubleSpinBox()
            box.setRange(flow, fhigh)
            box.setDecimals(decimals)
            box.setSpecialValueText(special)
            box.valueChanged.connect(self._edited)
            self.fields[name] = box
        for name in _RATES:
            edit = QLineEdit()
            edit.textEdited.connect(self._edited)
            self.fields[name] = edit
        for name, label in _BOOLS.items():
            check = QCheckBox(label)
            check.toggled.connect(self._edited)
            self.fields[name] = check
        optimizer = QComboBox()
        optimizer.addItems(list(OPTIMIZERS))
        optimizer.currentIndexChanged.connect(self._edited)
        self.fields["optimizer"] = optimizer
        for name, widget in self.fields.items():
            widget.setObjectName(f"finetune.{name}")
            widget.setToolTip(TIPS.get(name, ""))
            if not isinstance(widget, QCheckBox):
                widget.setMinimumWidth(FIELD_WIDTH[0])
                widget.setMaximumWidth(FIELD_WIDTH[1])

        top = QFormLayout()
        top.addRow("Preset:", self.preset)
        top.addRow("Method:", self.method)
        groups = QGridLayout()
        for index, (group_title, names) in enumerate(_GROUPS):
            group = QGroupBox(group_title)
            rows = QFormLayout(group)
            for name in names:
                rows.addRow(_label(name), self.fields[name])
            groups.addWidget(group, *divmod(index, 2))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(groups)
        self.set_config(self._base)

    # -- reading and writing ---------------------------------------------------------
    def config(self) -> TrainConfig:
        """The form as a config; raises ConfigError on a field that is not a number."""
        values: dict[str, Any] = {"method": self.current_method()}
        for name, widget in self.fields.items():
            if isinstance(widget, QSpinBox | QDoubleSpinBox):
                values[name] = widget.value()
            elif isinstance(widget, QCheckBox):
                values[name] = widget.isChecked()
            elif isinstance(widget, QComboBox):
                values[name] = widget.currentText()
            elif isinstance(widget, QLineEdit):
                try:
                    values[name] = float(widget.text())
                except ValueError:
                    raise ConfigError(f"Fine-tune settings: {_RATES[name].lower()} must be a "
                                      f"number such as 1e-5, not {widget.text()!r}.") from None
        if not values["epochs"]:
            values["epochs"] = None
        return replace(self._base, **values)

    def set_config(self, config: TrainConfig) -> None:
        """Show `config` (changed fires once)."""
        self._base = config
        self._filling = True
        try:
            self.method.setCurrentIndex(METHODS.index(config.method))
            for name, widget in self.fields.items():
                value = getattr(config, name)
                if isinstance(widget, QSpinBox):
                    widget.setValue(int(value))
                elif isinstance(widget, QDoubleSpinBox):
                    widget.setValue(float(value or 0.0))
                elif isinstance(widget, QCheckBox):
                    widget.setChecked(bool(value))
                elif isinstance(widget, QComboBox):
                    widget.setCurrentText(str(value))
                elif isinstance(widget, QLineEdit):
                    widget.setText(_rate_text(float(value)))
        finally:
            self._filling = False
        self.changed.emit()

    def set_values(self, **values: Any) -> None:
        """Change some fields (the tests' and the CLI-minded user's shortcut)."""
        self.set_config(replace(self.config(), **values))

    def current_method(self) -> Method:
        method: Method = self.method.currentData() or "lora"
        return method

    def show_estimates(self, lines: dict[Method, str]) -> None:
        """Each method's label followed by its estimate ("LoRA — 310.2 MB, fits")."""
        for index, method in enumerate(METHODS):
            extra = lines.get(method)
            self.method.setItemText(index, f"{METHOD_LABELS[method]} — {extra}" if extra
                                    else METHOD_LABELS[method])

    # -- edits -------------------------------------------------------------------------
    @Slot(int)
    def _preset_chosen(self, index: int) -> None:
        preset = PRESETS[self.preset.itemText(index)]
        self.set_config(with_method(preset, self.current_method()))

    @Slot(int)
    def _method_chosen(self, _index: int) -> None:
        try:
            config = self.config()
        except ConfigError:
            self.changed.emit()  # the bad field's line is shown; the method stays chosen
            return
        self.set_config(with_method(replace(config, method=self._base.method),
                                    self.current_method()))

    @Slot()
    def _edited(self) -> None:
        if not self._filling:
            self.changed.emit()
