"""A run's numbers at its latest step: loss, learning rate, speed, trained tokens, peak
memory against the estimate made before it started, and the time left."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from macllm_app.core.finetune.runs import Run, StepRecord
from macllm_app.ui.panes.finetune.runs_view import duration_text

FIELDS = ("Step", "Loss", "Validation loss", "Learning rate", "Iterations/s", "Tokens/s",
          "Trained tokens", "Time left", "Peak memory")
COLUMNS = 3
WIDE = "Peak memory"  # a row of its own: it says the estimate too


def _fixed(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def step_texts(event: dict[str, Any], estimate_bytes: int | None) -> dict[str, str]:
    """The numbers of one training step (a reported event, or a recorded one as a dict)."""
    from macllm_app.core.units import human_size

    peak = event.get("peak_memory_bytes")
    estimate = f" (est. {human_size(estimate_bytes)})" if estimate_bytes else ""
    total = event.get("total")
    return {
        "Step": f"{event['step']} of {total}" if total else str(event["step"]),
        "Loss": _fixed(event.get("loss"), ".4f"),
        "Learning rate": _fixed(event.get("learning_rate"), ".3g"),
        "Iterations/s": _fixed(event.get("iters_per_s"), ".2f"),
        "Tokens/s": _fixed(event.get("tokens_per_s"), ".0f"),
        "Trained tokens": _fixed(event.get("trained_tokens"), ","),
        "Peak memory": f"{human_size(peak)}{estimate}" if peak else "",
        "Time left": duration_text(event.get("eta_s")),
    }


class RunNumbers(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runNumbers")
        self.values: dict[str, QLabel] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        for i, name in enumerate(FIELDS):
            value = QLabel("")
            value.setObjectName(f"runNumber.{name}")
            value.setMinimumWidth(1)  # a long number is cut short, never widens the pane
            self.values[name] = value
            row, column = divmod(i, COLUMNS)
            if name == WIDE:
                row, column = (len(FIELDS) + COLUMNS - 2) // COLUMNS, 0
            grid.addWidget(QLabel(f"{name}:"), row, 2 * column)
            grid.addWidget(value, row, 2 * column + 1, 1,
                           2 * COLUMNS - 1 if name == WIDE else 1)
            grid.setColumnStretch(2 * column + 1, 1)

    def value(self, name: str) -> str:
        return self.values[name].text()

    def clear(self) -> None:
        for label in self.values.values():
            label.setText("")

    def show_event(self, event: dict[str, Any], estimate_bytes: int | None) -> None:
        """A step the running job reported."""
        if event.get("kind") == "valid":
            self.values["Validation loss"].setText(_fixed(event.get("loss"), ".4f"))
        elif event.get("kind") == "train":
            for name, text in step_texts(event, estimate_bytes).items():
                self.values[name].setText(text)

    def show_run(self, run: Run, records: list[StepRecord]) -> None:
        """A run's numbers as recorded: its last steps, its peak and its duration."""
        self.clear()
        train = [r for r in records if r.kind == "train"]
        valid = [r for r in records if r.kind == "valid" and r.loss is not None]
        if train:
            last = train[-1]
            self.show_event({"kind": "train", "step": last.step, "total": run.total_steps,
                             "loss": last.loss, "learning_rate": last.learning_rate,
                             "iters_per_s": last.iters_per_s,
                             "tokens_per_s": last.tokens_per_s,
                             "trained_tokens": last.trained_tokens,
                             "peak_memory_bytes": run.peak_memory_bytes or None},
                            run.estimate_bytes)
        if valid:
            self.values["Validation loss"].setText(f"{valid[-1].loss:.4f}")
        self.values["Time left"].setText(f"took {duration_text(run.duration_s)}"
                                         if run.duration_s else "")
