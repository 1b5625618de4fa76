"""GUI fixtures: a MainWindow on a private profile, small generations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

# The offscreen platform cannot resize native windows and says so once per window.
OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/gui/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@pytest.fixture
def gui_settings() -> Any:
    from macllm_app.core.settings import Settings

    settings = Settings()
    settings.engine.n_threads = 2
    settings.engine.n_ctx = 2048
    settings.sampling.max_tokens = 12
    settings.sampling.temperature = 0.0
    settings.sampling.seed = 1
    settings.chat.system_prompt = "You are a helpful assistant."
    return settings


@pytest.fixture
def make_window(qtbot: Any, gui_settings: Any) -> Iterator[Callable[..., Any]]:
    from macllm_app.ui.main_window import MainWindow

    windows: list[Any] = []

    def make(settings: Any = None, *, load: bool = True, store: Any = None) -> Any:
        window = MainWindow(settings or gui_settings, store, load_on_show=load)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


@pytest.fixture
def window(make_window: Callable[..., Any]) -> Any:
    """A window whose default model loads at start (real engine host)."""
    return make_window()
