"""The Quantize pane driving real quantizations offscreen: the default model's F16 copy
through llama.cpp (progress, the library, measured quality, the plot, the guide, the
chat), a tiny random-weight model through MLX, cancel, the Library's "Quantize…", and
one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from macllm_app.core import paths
from macllm_app.core.library.catalogue import Catalogue
from macllm_app.core.quantize.llama_types import LLAMA_TYPES
from tests.support.library_gui_helpers import open_library
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _open(qtbot: Any, window: Any, source: Path) -> Any:
    window.show_pane("quantize")
    pane = window.panes["quantize"]
    with qtbot.waitSignal(pane.summary_shown, timeout=20_000):
        pane.set_source(str(source))
    return pane


def _start(qtbot: Any, pane: Any, type_name: str) -> None:
    assert pane.types.select_name(type_name)
    assert pane.start_button.isEnabled()
    qtbot.mouseClick(pane.start_button, Qt.MouseButton.LeftButton)


def _leftovers() -> list[str]:
    return sorted(p.name for p in paths.models_dir().iterdir())


def test_quantize_measure_and_load_the_default_models_f16_copy(
        qtbot: Any, make_window: Any, f16_default_model: Path) -> None:
    window = make_window(load=False)
    pane = _open(qtbot, window, f16_default_model)
    assert pane.current_engine() == "llama.cpp"
    assert pane.types.choices.rowCount() == len(LLAMA_TYPES)
    assert pane.types.chosen().name == "Q4_K_M"  # the default a new user gets
    assert pane.quality.empty.isVisible() and "guide" in pane.quality.guide.text()
    assert not pane.measure_button.isEnabled()

    seen: list[tuple[int, str]] = []
    pane.strip.bar.valueChanged.connect(lambda v: seen.append((v, pane.strip.label.text())))
    with qtbot.waitSignal(pane.jobs.quantized, timeout=120_000) as made:
        _start(qtbot, pane, "Q8_0")
        assert pane.dest.text().startswith(f"Writes {paths.models_dir() / 'smollm2-Q8_0.gguf'}")
    entry = made.args[0]
    out = Path(entry["path"])
    assert out.name == "smollm2-Q8_0.gguf" and out.is_file()
    assert Catalogue().find_path(out) is not None and entry["quantization"] == "Q8_0"
    assert any(" of 272" in label for _, label in seen) and seen[-1][0] > 900
    assert not pane.strip.isVisible() and pane.measure_button.isEnabled()

    with qtbot.waitSignal(pane.summary_shown, timeout=180_000):
        qtbot.mouseClick(pane.measure_button, Qt.MouseButton.LeftButton)
    quality = pane.quality
    assert quality.table.rowCount() == 1 and quality.cell(0, "Model") == "smollm2-Q8_0.gguf"
    assert 0 < float(quality.cell(0, "KLD mean")) < 0.05
    assert float(quality.cell(0, "Bits/weight")) == pytest.approx(8.5, abs=0.6)
    assert float(quality.cell(0, "Decode tok/s")) > 0 and quality.cell(0, "Memory")
    assert quality.plotted() == 1
    assert "Measured here: smollm2-Q8_0.gguf" in quality.guide.text()

    with qtbot.waitSignal(window.engine.loaded, timeout=60_000) as loaded:
        qtbot.mouseClick(pane.load_button, Qt.MouseButton.LeftButton)
    assert loaded.args[0].path == str(out)


def test_cancel_refusals_and_a_computed_importance_matrix(
        qtbot: Any, make_window: Any, f16_default_model: Path, tmp_path: Path) -> None:
    window = make_window(load=False)
    pane = _open(qtbot, window, f16_default_model)
    before = _leftovers()
    with qtbot.waitSignal(pane.jobs.cancelled, timeout=60_000):
        _start(qtbot, pane, "Q4_K_M")
        qtbot.waitUntil(lambda: pane.strip.bar.value() > 0, timeout=60_000)
        qtbot.mouseClick(pane.strip.cancel_button, Qt.MouseButton.LeftButton)
    assert _leftovers() == before
    assert pane.result.text() == "Cancelled; nothing was written."

    with qtbot.waitSignal(pane.jobs.failed, timeout=20_000) as refused:
        _start(qtbot, pane, "IQ2_XS")
    assert refused.args[0] == ("IQ2_XS needs an importance matrix: compute one from a "
                               "calibration text, or give an imatrix file made elsewhere.")
    assert pane.result.text() == refused.args[0] and _leftovers() == before

    pane.imatrix.setCurrentIndex(1)  # computed from the shipped calibration text
    with qtbot.waitSignal(pane.jobs.quantized, timeout=300_000) as made:
        _start(qtbot, pane, "IQ2_XS")
    matrix = Path(made.args[0]["path"] + ".imatrix.gguf")
    assert made.args[0]["quantization"] == "IQ2_XS" and matrix.is_file()
    assert made.args[0]["extra"]["imatrix"] == str(matrix)

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\xff" * 64)
    pane.set_source(str(broken))
    qtbot.waitUntil(lambda: "broken.gguf" in pane.result.text(), timeout=20_000)
    assert "\n" not in pane.result.text() and not pane.start_button.isEnabled()
    assert _leftovers() == sorted([*before, "smollm2-IQ2_XS.gguf", matrix.name])


def test_mlx_quantization_from_the_pane(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    model = make_tiny_mlx_model(tmp_path / "tiny")
    window = make_window(load=False)
    pane = _open(qtbot, window, model)
    assert pane.current_engine() == "mlx" and pane.group.isVisibleTo(pane)
    assert not pane.requantize.isVisibleTo(pane)
    pane.group.setCurrentIndex(pane.group.findData(128))
    with qtbot.waitSignal(pane.jobs.failed, timeout=20_000) as refused:
        _start(qtbot, pane, "4-bit")
    assert "does not divide tiny's hidden size (64)" in refused.args[0]
    pane.group.setCurrentIndex(pane.group.findData(32))
    with qtbot.waitSignal(pane.jobs.quantized, timeout=120_000) as made:
        _start(qtbot, pane, "mixed_3_6")
    out = Path(made.args[0]["path"])
    assert out.name == "tiny-mlx-mixed_3_6"
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["bits"] == 3 and config["quantization"]["group_size"] == 32


def test_the_librarys_quantize_action_opens_the_pane_on_that_model(
        qtbot: Any, make_window: Any, default_model: Path) -> None:
    window = make_window(load=False)
    library = open_library(qtbot, window)
    assert library.select_path(str(default_model))
    index = library.table.selectionModel().selectedRows()[0]
    menu = library.context_menu_at(library.table.visualRect(index).center())
    action = next(a for a in menu.actions() if a.objectName() == "quantizeModel")
    pane = window.panes["quantize"]
    with qtbot.waitSignal(pane.summary_shown, timeout=20_000):
        action.trigger()
    assert window.stack.currentWidget() is pane
    assert pane.sources.currentData() == str(default_model)
    # The default model is Q4_1: a smaller type needs "allow requantizing".
    with qtbot.waitSignal(pane.jobs.failed, timeout=20_000) as refused:
        _start(qtbot, pane, "Q2_K")
    assert "already quantized (Q4_1)" in refused.args[0]


def test_advanced_llama_options_reach_the_quantizer(qtbot: Any, make_window: Any,
                                                    f16_default_model: Path) -> None:
    from gguf import GGUFReader

    window = make_window(load=False)
    pane = _open(qtbot, window, f16_default_model)
    assert not pane.advanced.isChecked()
    pane.advanced.setChecked(True)
    pane.advanced.overrides.setText("nonsense")
    pane.advanced.overrides.editingFinished.emit()
    assert pane.types.select_name("Q4_0")
    assert not pane.start_button.isEnabled()
    assert "write it as PATTERN=TYPE" in pane.dest.text()
    pane.advanced.overrides.setText(r"blk\.0\.attn_v=Q8_0")
    pane.advanced.overrides.editingFinished.emit()
    pane.advanced.embedding_type.setCurrentText("Q5_0")
    pane.advanced.threads.setValue(2)
    made: list[dict[str, Any]] = []
    failed: list[str] = []
    pane.jobs.quantized.connect(made.append)
    pane.jobs.failed.connect(failed.append)
    _start(qtbot, pane, "Q4_0")
    qtbot.waitUntil(lambda: bool(made or failed), timeout=120_000)
    assert not failed, failed
    kinds = {t.name: t.tensor_type.name for t in GGUFReader(made[0]["path"]).tensors}
    assert kinds["token_embd.weight"] == "Q5_0"
    assert kinds["blk.0.attn_v.weight"] == "Q8_0" and kinds["blk.1.attn_v.weight"] != "Q8_0"
    assert kinds["blk.0.attn_q.weight"] == "Q4_0"
