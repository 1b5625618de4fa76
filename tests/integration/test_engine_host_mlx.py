"""The engine host process running the MLX engine (tiny random-weight models)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.engines.host_main import FLUSH_TOKENS
from macllm_app.core.errors import EngineCrashed, EngineError
from macllm_app.core.types import (
    GenerationRequest,
    GenerationStats,
    LoadConfig,
    Message,
    TextDelta,
)
from tests.support.engine_events import collect_events, greedy_request, stream_and_cancel
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = pytest.mark.mlx

STORY = (Message("user", "Write a long story."),)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mlx_model(tmp_path_factory.mktemp("mlx-host") / "tiny", quantize=True)


@pytest.fixture
def host(tiny_model: Path) -> Iterator[EngineHost]:
    engine_host = EngineHost()
    info = engine_host.load(LoadConfig(model_path=str(tiny_model), engine="mlx", n_ctx=2048))
    assert info.engine == "mlx"
    yield engine_host
    engine_host.shutdown()


def collect(host: EngineHost, req: GenerationRequest) -> tuple[list[int], GenerationStats]:
    _, ids, stats = collect_events(host.stream(req))
    return ids, stats


def test_stream_through_the_host(host: EngineHost) -> None:
    ids, stats = collect(host, greedy_request(STORY, 20))
    assert stats.engine == "mlx"
    assert stats.generated_tokens == len(ids) == 20
    assert stats.finish_reason == "length"
    assert host.count_tokens("hello") == 5  # one token per byte
    again, cached = collect(host, greedy_request(STORY, 20))
    assert again == ids
    assert cached.cached_tokens == cached.prompt_tokens - 1


def test_cancel_from_another_thread_stops_within_a_token(host: EngineHost) -> None:
    received, at_cancel, stats = stream_and_cancel(host, greedy_request(STORY, 1900), 0.1)
    assert stats is not None and stats.finish_reason == "cancelled"
    assert stats.generated_tokens == received < 1900
    assert received - at_cancel <= 2 * FLUSH_TOKENS + 1
    _, after = collect(host, greedy_request(STORY, 3))
    assert after.finish_reason == "length"


def test_host_killed_mid_reply_is_reported_and_a_new_host_works(host: EngineHost,
                                                                 tiny_model: Path) -> None:
    pid = host.pid
    assert pid is not None
    crashed = r"^The engine stopped unexpectedly \(killed by SIGKILL"
    with pytest.raises(EngineCrashed, match=crashed):
        for event in host.stream(greedy_request(STORY, 1900)):
            if isinstance(event, TextDelta):
                os.kill(pid, signal.SIGKILL)
    assert not host.is_alive()
    host.load(LoadConfig(model_path=str(tiny_model), engine="mlx", n_ctx=2048))
    assert host.pid != pid
    ids, stats = collect(host, greedy_request(STORY, 4))
    assert stats.generated_tokens == len(ids) == 4


def test_unload_then_generate_is_a_clear_error(host: EngineHost) -> None:
    host.unload()
    with pytest.raises(EngineError, match=r"^No model is loaded\.$"):
        collect(host, greedy_request(STORY, 3))
    assert host.is_alive()


def test_a_gguf_only_model_is_refused_on_mlx_and_the_host_survives(tmp_path: Path) -> None:
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_bytes(b"GGUF" + b"\0" * 60)
    engine_host = EngineHost()
    try:
        with pytest.raises(EngineError):
            engine_host.load(LoadConfig(model_path=str(not_a_model), engine="mlx"))
        assert engine_host.is_alive()
    finally:
        engine_host.shutdown()
