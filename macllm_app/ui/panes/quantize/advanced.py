"""The Quantize pane's advanced llama.cpp options, as `llama-quantize` takes them: the
output and token-embedding tensors' types, one type for every tensor (pure), per-tensor
type overrides and threads. Checked by `plan_quantize`, like the command line's."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.errors import UserError

#: Tensor types offered for the output and embedding tensors (llama-quantize takes any).
TENSOR_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K", "Q4_K", "Q3_K", "Q2_K",
                "Q5_0", "Q4_0", "IQ4_NL", "IQ4_XS")
DEFAULT = "Default"


@dataclass(frozen=True, slots=True)
class AdvancedOptions:
    output_tensor_type: str | None = None
    token_embedding_type: str | None = None
    pure: bool = False
    tensor_types: tuple[tuple[str, str], ...] = ()
    threads: int = 0


def parse_overrides(text: str) -> tuple[tuple[str, str], ...]:
    """"attn_v=Q8_0, ffn_down=Q6_K" -> (("attn_v", "Q8_0"), ("ffn_down", "Q6_K"))."""
    pairs = []
    for spec in (part.strip() for part in text.replace("\n", ",").split(",")):
        if not spec:
            continue
        pattern, sep, kind = spec.rpartition("=")
        if not sep or not pattern.strip() or not kind.strip():
            raise UserError(f"Tensor type override {spec!r}: write it as PATTERN=TYPE.")
        pairs.append((pattern.strip(), kind.strip().upper()))
    return tuple(pairs)


class AdvancedLlamaOptions(QGroupBox):
    """A checkable group: unchecked, llama.cpp's defaults."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__("Advanced llama.cpp options")
        self.setObjectName("quantizeAdvanced")
        self.setCheckable(True)
        self.setChecked(False)
        self.output_type = self._type_box("quantizeOutputType")
        self.embedding_type = self._type_box("quantizeEmbeddingType")
        self.pure = QCheckBox("One type for every tensor (pure: no mixes)")
        self.pure.setObjectName("quantizePure")
        self.overrides = QLineEdit()
        self.overrides.setObjectName("quantizeOverrides")
        self.overrides.setPlaceholderText("attn_v=Q8_0, ffn_down=Q6_K  (regex=TYPE)")
        self.threads = QSpinBox()
        self.threads.setObjectName("quantizeThreads")
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic")
        self.fields = QWidget()  # folded away while the group is off
        form = QFormLayout(self.fields)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Output tensor:", self.output_type)
        form.addRow("Token embeddings:", self.embedding_type)
        form.addRow("Tensor types:", self.overrides)
        form.addRow("Threads:", self.threads)
        form.addRow("", self.pure)
        QVBoxLayout(self).addWidget(self.fields)
        self.fields.setVisible(False)
        self.setFlat(True)
        self.toggled.connect(self.fields.setVisible)
        self.toggled.connect(lambda on: self.setFlat(not on))
        self.toggled.connect(lambda _on: self.changed.emit())
        self.pure.toggled.connect(lambda _on: self.changed.emit())
        self.overrides.editingFinished.connect(self.changed.emit)

    def _type_box(self, name: str) -> QComboBox:
        box = QComboBox()
        box.setObjectName(name)
        box.addItem(DEFAULT)
        box.addItems(TENSOR_TYPES)
        box.currentIndexChanged.connect(lambda _i: self.changed.emit())
        return box

    def options(self) -> AdvancedOptions:
        """The options as set (llama.cpp's defaults when the group is off); raises
        UserError for an override that is not PATTERN=TYPE."""
        if not self.isChecked():
            return AdvancedOptions()

        def chosen(box: QComboBox) -> str | None:
            text = box.currentText()
            return None if text == DEFAULT else text

        return AdvancedOptions(chosen(self.output_type), chosen(self.embedding_type),
                               self.pure.isChecked(), parse_overrides(self.overrides.text()),
                               self.threads.value())
