"""A fine-tuned adapter in the chat: the model runs with it (its name says so), and the
compare button answers the same message with the base model alone, beside the tuned
reply, with both replies' stats and models in the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from macllm_app.core.finetune.config import TrainConfig
from macllm_app.core.finetune.plan import plan_training
from macllm_app.core.finetune.runs import RunStore
from macllm_app.core.finetune.train import TRAIN_TARGET
from macllm_app.core.jobs import Job
from tests.support.gui_helpers import last_reply, send_and_wait, set_max_tokens, wait_loaded
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = [pytest.mark.gui, pytest.mark.mlx, pytest.mark.slow]


def _trained_run(tmp_path: Path) -> tuple[Path, Any]:
    base = make_tiny_mlx_model(tmp_path / "tiny", seed=3)
    data = tmp_path / "train.jsonl"
    rows = [{"prompt": f"Say {w}.", "response": f"{w} {w} {w}!"}
            for w in ("yes", "no", "up", "down", "left", "right", "on", "off")]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    config = TrainConfig(rank=4, num_layers=2, learning_rate=3e-3, batch_size=2, iters=10,
                         max_seq_length=64, save_every=5, steps_per_eval=5, val_batches=1)
    plan = plan_training(base, data, None, config, 64 * 1024**3)
    Job(TRAIN_TARGET, (plan,)).run()
    return base, RunStore().get(plan.run_id)


def test_chat_with_an_adapter_and_compare_with_the_base(qtbot: Any, make_window: Any,
                                                         tmp_path: Path) -> None:
    base, run = _trained_run(tmp_path)
    window = make_window(load=False)
    pane = window.chat
    set_max_tokens(pane, 4)
    window.chat_with_adapter(str(base), str(run.adapter_dir))
    wait_loaded(qtbot, window)
    assert window.engine.config.adapter_path == str(run.adapter_dir)
    send_and_wait(qtbot, pane, "Say yes.")
    tuned = last_reply(pane)
    assert tuned.stats["model"] == f"tiny + {run.id}"

    action = window.action_registry["chat.compare_engines"]
    qtbot.waitUntil(action.isEnabled, timeout=10_000)
    assert action.text() == "Run without the adapter"
    button = pane.view.message_widgets()[-1].compare_button
    assert button is not None and button.text() == "Run without the adapter"
    with qtbot.waitSignal(pane.streaming_changed, timeout=120_000,
                          check_params_cb=lambda streaming: streaming is False):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    plain = last_reply(pane)
    assert plain.status == "complete", plain.error
    assert plain.stats["model"] == "tiny" and plain.stats["compared_with"] == tuned.id
    assert window.engine.config.adapter_path is None
    table = pane.view.message_widgets()[-1].comparison
    assert table is not None
    assert [table.cell(6, c) for c in range(3)] == ["Model", f"tiny + {run.id}", "tiny"]
    assert [table.cell(0, c) for c in (1, 2)] == ["mlx", "mlx"]
    # The chat still runs the tuned model: the next message has the adapter again.
    send_and_wait(qtbot, pane, "Say no.")
    assert last_reply(pane).stats["model"] == f"tiny + {run.id}"
