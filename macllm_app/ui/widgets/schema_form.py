"""A form generated from a pydantic settings group: one editor per field.

Editors follow the field's type and constraints (ge/le), titles become
labels and descriptions become tooltips. Optional numbers show "Auto" at
their lowest value, which stands for None.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

AUTO = "Auto"


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return annotation, False


def _bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    """The field's `ge`/`le` constraints (pydantic keeps them as metadata objects)."""
    low = high = None
    for item in info.metadata:
        if getattr(item, "ge", None) is not None:
            low = float(item.ge)
        if getattr(item, "le", None) is not None:
            high = float(item.le)
    return low, high


class _PathEdit(QWidget):
    def __init__(self, placeholder: str) -> None:
        super().__init__()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.line = QLineEdit()
        self.line.setPlaceholderText(placeholder)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        layout.addWidget(self.line, 1)
        layout.addWidget(browse)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model", "",
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.line.setText(path)


class SchemaForm(QWidget):
    """Editors for the fields of `group`; `values()` returns a dict for it."""

    changed = Signal()

    def __init__(self, group: type[BaseModel], values: BaseModel | dict[str, Any],
                 parent: QWidget | None = None, *, fields: tuple[str, ...] | None = None) -> None:
        super().__init__(parent)
        self.group = group
        data = values.model_dump() if isinstance(values, BaseModel) else dict(values)
        self._editors: dict[str, tuple[QWidget, Any, bool]] = {}
        layout = QFormLayout(self)
        self.form_layout = layout
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        for name, info in group.model_fields.items():
            if fields is not None and name not in fields:
                continue
            default = info.get_default(call_default_factory=True)
            editor = self._editor(name, info, data.get(name, default))
            editor.setObjectName(f"setting.{name}")
            editor.setToolTip(info.description or "")
            layout.addRow(f"{info.title or name}:", editor)

    # -- building ---------------------------------------------------------
    def _editor(self, name: str, info: FieldInfo, value: Any) -> QWidget:
        kind, optional = _unwrap_optional(info.annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        widget_kind = extra.get("widget")
        low, high = _bounds(info)
        editor: QWidget
        if typing.get_origin(kind) is Literal:
            combo = QComboBox()
            for choice in typing.get_args(kind):
                combo.addItem(str(choice), choice)
            combo.setCurrentIndex(max(0, combo.findData(value)))
            combo.currentIndexChanged.connect(self.changed)
            editor = combo
        elif kind is bool:
            check = QCheckBox()
            check.setChecked(bool(value))
            check.toggled.connect(self.changed)
            editor = check
        elif kind is int:
            spin = QSpinBox()
            minimum = int(low if low is not None else -(2**31))
            spin.setRange(minimum - 1 if optional else minimum,
                          int(high if high is not None else 2**31 - 1))
            if optional or extra.get("lowest"):
                spin.setSpecialValueText(str(extra.get("lowest") or AUTO))
            spin.setValue(spin.minimum() if value is None else int(value))
            spin.valueChanged.connect(self.changed)
            editor = spin
        elif kind is float:
            dspin = QDoubleSpinBox()
            dspin.setDecimals(2)
            dspin.setSingleStep(0.05)
            dspin.setRange(low if low is not None else -1e9, high if high is not None else 1e9)
            dspin.setValue(float(value))
            dspin.valueChanged.connect(self.changed)
            editor = dspin
        elif widget_kind == "multiline":
            text = QPlainTextEdit(str(value or ""))
            text.setFixedHeight(90)
            text.textChanged.connect(self.changed)
            editor = text
        elif widget_kind == "path":
            path = _PathEdit("Bundled default model")
            path.line.setText(str(value or ""))
            path.line.textChanged.connect(self.changed)
            editor = path
        else:
            line = QLineEdit(str(value or ""))
            line.textChanged.connect(self.changed)
            editor = line
        self._editors[name] = (editor, kind, optional)
        return editor

    # -- reading ----------------------------------------------------------
    def editor(self, name: str) -> QWidget:
        return self._editors[name][0]

    def values(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, (editor, _kind, optional) in self._editors.items():
            value: Any
            if isinstance(editor, QComboBox):
                value = editor.currentData()
            elif isinstance(editor, QCheckBox):
                value = editor.isChecked()
            elif isinstance(editor, QSpinBox):
                value = editor.value()
                if optional and value == editor.minimum():
                    value = None
            elif isinstance(editor, QDoubleSpinBox):
                value = round(editor.value(), 4)
            elif isinstance(editor, QPlainTextEdit):
                value = editor.toPlainText()
            elif isinstance(editor, _PathEdit):
                value = editor.line.text().strip() or None
            elif isinstance(editor, QLineEdit):
                value = editor.text()
                if optional and not value:
                    value = None
            result[name] = value
        return result
