"""The Preferences dialog, generated from the settings schema (one tab per group)."""

from __future__ import annotations

from typing import cast

from pydantic import BaseModel, ValidationError
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.settings import PREFERENCE_GROUPS, Settings
from macllm_app.ui.widgets.schema_form import SchemaForm


class PreferencesDialog(QDialog):
    """Edits a copy of the settings; `result_settings()` holds the accepted ones."""

    def __init__(self, current: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setObjectName("preferences")
        self.setMinimumWidth(520)
        self._current = current
        self.forms: dict[str, SchemaForm] = {}
        tabs = QTabWidget()
        for name in PREFERENCE_GROUPS:
            info = Settings.model_fields[name]
            group = cast(BaseModel, getattr(current, name))
            form = SchemaForm(type(group), group)
            self.forms[name] = form
            tabs.addTab(form, info.title or name)
        self._error = QLabel()
        self._error.setObjectName("preferences.error")
        self._error.setStyleSheet("color: #c0392b;")
        self._error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        restore = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        restore.clicked.connect(self._restore_defaults)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(self._error)
        layout.addWidget(buttons)
        self._tabs = tabs
        self._result: Settings | None = None

    def result_settings(self) -> Settings | None:
        return self._result

    def build(self) -> Settings:
        """Settings from the editors; raises ValidationError for bad input."""
        data = self._current.model_dump()
        for name, form in self.forms.items():
            data[name] = {**data[name], **form.values()}
        return Settings.model_validate(data)

    def accept(self) -> None:
        try:
            self._result = self.build()
        except ValidationError as exc:
            first = exc.errors()[0]
            self._error.setText(f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
            self._error.show()
            return
        super().accept()

    def _restore_defaults(self) -> None:
        name = PREFERENCE_GROUPS[self._tabs.currentIndex()]
        old = self.forms[name]
        defaults = type(getattr(self._current, name))()
        form = SchemaForm(type(defaults), defaults)
        self.forms[name] = form
        index = self._tabs.currentIndex()
        self._tabs.removeTab(index)
        self._tabs.insertTab(index, form, Settings.model_fields[name].title or name)
        self._tabs.setCurrentIndex(index)
        old.deleteLater()

