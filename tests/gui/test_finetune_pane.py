"""The Fine-tune pane driving real runs offscreen on a tiny random-weight MLX model: the
memory estimate and the dataset preview, a LoRA run with its live chart and numbers,
the history, Fuse into the library and "Chat with it" (the adapter loaded on MLX); Stop
then Resume; a bad dataset line and a parameter out of range refused in one line, a
dataset the preview finds blocking; a run that will not fit refused with the verdict and
started anyway; the Library's "Fine-tune…"; "Chat with it" on a GGUF base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from macllm_app.core.finetune.runs import RunStore
from macllm_app.core.library.catalogue import Catalogue
from macllm_app.core.library.loading import needs_mlx_copy
from macllm_app.core.library.mlx_copies import existing_mlx_copy
from tests.support.library_gui_helpers import open_library, rows_by_path
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = [pytest.mark.gui, pytest.mark.slow, pytest.mark.mlx]

FACTS = [("Which colour is the sky?", "The sky is blue."),
         ("Which colour is grass?", "Grass is green."),
         ("Which colour is snow?", "Snow is white."),
         ("Which colour is coal?", "Coal is black."),
         ("Which colour is a lemon?", "A lemon is yellow."),
         ("Which colour is a tomato?", "A tomato is red."),
         ("Which colour is the sea?", "The sea is blue."),
         ("Which colour is a carrot?", "A carrot is orange.")]
#: A short LoRA run on the tiny model (two layers, hidden size 64).
QUICK: dict[str, Any] = {"method": "lora", "rank": 4, "num_layers": 2, "learning_rate": 3e-3,
                         "batch_size": 2, "iters": 12, "max_seq_length": 96,
                         "save_every": 4, "steps_per_eval": 6, "val_batches": 1,
                         "warmup_steps": 0, "cosine_decay": False, "mask_prompt": True}
RUN_S = 90_000  # ms: a run, a job or a load on a busy two-core machine


def write_data(path: Path, bad_line: str | None = None) -> Path:
    """16 prompt/response records; `bad_line` replaces line 3."""
    lines = [json.dumps({"prompt": p, "response": r}) for p, r in FACTS * 2]
    if bad_line is not None:
        lines[2] = bad_line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def open_pane(qtbot: Any, window: Any, base: Path, data: Path, **config: Any) -> Any:
    """The pane with `base`, `data` and QUICK (+ `config`) chosen, its check done."""
    window.show_pane("finetune")
    pane = window.panes["finetune"]
    assert window.stack.currentWidget() is pane
    pane.form.set_values(**{**QUICK, **config})
    pane.set_base(str(base))
    pane.set_data(str(data))
    return pane


def wait_checked(qtbot: Any, pane: Any) -> None:
    qtbot.waitUntil(pane.checks.is_current, timeout=20_000)


def start_and_wait(qtbot: Any, pane: Any, button: Any) -> dict[str, Any]:
    with qtbot.waitSignal(pane.training.ended, timeout=RUN_S) as ended:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    run: dict[str, Any] = ended.args[0]
    qtbot.waitUntil(lambda: pane.panel.runs.cell(run["id"], "State") == run["state"],
                    timeout=10_000)
    return run


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_tiny_mlx_model(tmp_path / "tiny", seed=3)


def test_a_lora_run_from_preview_to_fused_model_and_chat(
        qtbot: Any, make_window: Any, tiny: Path, tmp_path: Path) -> None:
    window = make_window(load=False)
    with qtbot.waitSignal(window.panes["finetune"].checks.previewed, timeout=RUN_S) as shown:
        pane = open_pane(qtbot, window, tiny, write_data(tmp_path / "train.jsonl"))
    preview = shown.args[0]
    assert (preview["samples"], preview["valid_samples"]) == (14, 2)  # a tenth set aside
    assert preview["blocking"] == [] and not preview["truncated_lines"]
    assert pane.preview.summary.text().startswith(
        f"14 samples, {preview['total_tokens']:,} tokens")
    assert "validation: 2 samples" in pane.preview.summary.text()
    assert sum(pane.preview.bars()) == 14
    wait_checked(qtbot, pane)
    assert pane.memory.text().startswith("Needs about") and "fits in" in pane.memory.text()
    assert all(" — " in pane.form.method.itemText(i) for i in range(pane.form.method.count()))
    assert pane.start_button.isEnabled()

    steps: list[int] = []
    pane.training.step.connect(lambda e: steps.append(e["step"]) if e["kind"] == "train"
                               else None)
    run = start_and_wait(qtbot, pane, pane.start_button)
    assert run["state"] == "finished" and run["step"] == 12
    assert steps == list(range(1, 13))
    panel = pane.panel
    qtbot.waitUntil(lambda: panel.chart.plotted()[0] == 12, timeout=10_000)
    assert panel.chart.plotted()[1] >= 1  # validation points
    assert panel.runs.cell(run["id"], "Steps") == "12 / 12"
    assert panel.runs.selected().id == run["id"]
    assert [r.step for r in RunStore().steps(run["id"], "train")] == list(range(1, 13))
    qtbot.waitUntil(lambda: panel.numbers.value("Step") == "12 of 12", timeout=10_000)
    assert "(est. " in panel.numbers.value("Peak memory")
    assert float(panel.numbers.value("Tokens/s")) > 0
    assert pane.result.text().startswith(f"Run {run['id']}: finished 12 steps")

    library = window.panes["library"]
    with (qtbot.waitSignal(library.refreshed, timeout=RUN_S),
          qtbot.waitSignal(pane.added, timeout=RUN_S) as added):
        qtbot.mouseClick(panel.fuse_button, Qt.MouseButton.LeftButton)
    fused = Path(added.args[0])
    assert fused.is_dir() and (fused / "config.json").is_file()
    assert Catalogue().find_path(fused) is not None and str(fused) in rows_by_path(library)
    assert pane.result.text() == f"Added {fused.name} to the library."

    with qtbot.waitSignal(window.engine.loaded, timeout=RUN_S):
        qtbot.mouseClick(panel.chat_button, Qt.MouseButton.LeftButton)
    config = window.engine.config
    assert config.engine == "mlx" and config.model_path == str(tiny.resolve())
    assert config.adapter_path == run["adapter_dir"]
    assert window.stack.currentWidget() is window.chat


def test_stop_keeps_the_adapter_and_resume_finishes_the_run(
        qtbot: Any, make_window: Any, tiny: Path, tmp_path: Path) -> None:
    window = make_window(load=False)
    pane = open_pane(qtbot, window, tiny, write_data(tmp_path / "train.jsonl"), iters=60,
                     steps_per_eval=100)
    wait_checked(qtbot, pane)
    panel = pane.panel
    with qtbot.waitSignal(pane.training.ended, timeout=RUN_S) as ended:
        qtbot.mouseClick(pane.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.chart.plotted()[0] >= 6, timeout=RUN_S)
        assert pane.train_strip.cancel_button.text() == "Stop"
        assert not pane.start_button.isEnabled()
        qtbot.mouseClick(pane.train_strip.cancel_button, Qt.MouseButton.LeftButton)
    stopped = ended.args[0]
    assert stopped["state"] == "stopped" and 6 <= stopped["step"] < 60
    adapter = Path(stopped["adapter_dir"])
    saved = json.loads((adapter / "adapter_config.json").read_text())
    assert saved["step"] == stopped["step"] and (adapter / "adapters.safetensors").is_file()
    qtbot.waitUntil(lambda: panel.runs.cell(stopped["id"], "State") == "stopped",
                    timeout=10_000)
    qtbot.waitUntil(panel.resume_button.isEnabled, timeout=10_000)
    assert panel.fuse_button.isEnabled()  # a stopped run has its adapter

    run = start_and_wait(qtbot, pane, panel.resume_button)
    assert run["id"] == stopped["id"] and run["state"] == "finished" and run["step"] == 60
    qtbot.waitUntil(lambda: panel.chart.plotted()[0] == 60, timeout=10_000)
    steps = [r.step for r in RunStore().steps(run["id"], "train")]
    assert steps == list(range(1, 61))
    assert not panel.resume_button.isEnabled()


def test_a_bad_line_is_refused_and_a_run_too_big_starts_only_when_asked(
        qtbot: Any, make_window: Any, tiny: Path, tmp_path: Path) -> None:
    window = make_window(load=False)
    data = write_data(tmp_path / "train.jsonl", bad_line='{"prompt": "Which colour is '
                                                         'snow?", "reply": "White."}')
    pane = open_pane(qtbot, window, tiny, data, iters=4)
    qtbot.waitUntil(lambda: "line 3" in pane.problem.text(), timeout=20_000)
    problem = pane.problem.text()
    assert problem.startswith("train.jsonl: 1 problem: line 3:") and "\n" not in problem
    assert not pane.start_button.isEnabled() and not pane.memory.text()

    pane.form.set_values(learning_rate=2.0)  # a parameter out of range: one line too
    qtbot.waitUntil(lambda: "learning rate" in pane.problem.text(), timeout=20_000)
    assert not pane.start_button.isEnabled()

    text = tmp_path / "text.jsonl"
    text.write_text("".join(json.dumps({"text": f"{p} {r}"}) + "\n" for p, r in FACTS * 2),
                    encoding="utf-8")
    pane.form.set_values(learning_rate=3e-3)
    with qtbot.waitSignal(pane.checks.previewed, timeout=RUN_S):
        pane.set_data(str(text))  # plain text cannot be masked: the preview blocks Start
    assert pane.preview.blocking.text().startswith("Plain-text records have no prompt")
    assert pane.checks.is_current() and not pane.start_button.isEnabled()
    with qtbot.waitSignal(pane.checks.previewed, timeout=RUN_S):
        pane.form.set_values(mask_prompt=False)
    assert not pane.preview.blocking.isVisibleTo(pane)
    qtbot.waitUntil(pane.start_button.isEnabled, timeout=10_000)

    write_data(data)
    pane.available_bytes = lambda: 1024**2  # 1 MB: nothing fits
    pane.set_data(str(data))
    wait_checked(qtbot, pane)
    assert pane.problem.text() == "" and "more than the 1.0 MB available" in pane.memory.text()
    assert "does not fit" in pane.form.method.currentText()
    qtbot.mouseClick(pane.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(pane.start_anyway.isVisible, timeout=20_000)
    assert pane.result.text() == pane.checks.current.preflight.verdict.message
    assert RunStore().all_runs() == []  # nothing recorded for a refused run

    run = start_and_wait(qtbot, pane, pane.start_anyway)
    assert run["state"] == "finished" and run["step"] == 4
    assert not pane.start_anyway.isVisible()


def test_the_librarys_finetune_action_and_chat_with_a_gguf_base(
        qtbot: Any, make_window: Any, default_model: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    window = make_window(load=False)
    library = open_library(qtbot, window)
    assert library.select_path(str(default_model))
    index = library.table.selectionModel().selectedRows()[0]
    menu = library.context_menu_at(library.table.visualRect(index).center())
    action = next(a for a in menu.actions() if a.objectName() == "finetuneModel")
    action.trigger()
    pane = window.panes["finetune"]
    assert window.stack.currentWidget() is pane
    assert pane.sources.base == str(default_model)
    assert pane.sources.models.currentData() == str(default_model)

    # "Chat with it" on a GGUF base: the GGUF runs on MLX (as its MLX copy, made by the
    # load) with the adapter trained on that copy.
    loads: list[Any] = []
    monkeypatch.setattr(window.engine, "load", loads.append)
    pane.panel.chat_requested.emit(str(default_model), str(tmp_path / "adapter"))
    (config,) = loads
    assert (config.model_path, config.engine) == (str(default_model), "mlx")
    assert config.adapter_path == str(tmp_path / "adapter")
    assert config.n_ctx == window.settings.engine.n_ctx
    assert needs_mlx_copy(config) == (existing_mlx_copy(default_model) is None)
    assert window.stack.currentWidget() is window.chat
