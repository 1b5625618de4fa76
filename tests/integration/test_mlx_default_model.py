"""The MLX engine on the converted default model, through the engine host.

MLX runs the default model at a few tokens per second on this CPU, so replies
here are a handful of tokens.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.engines.host_main import FLUSH_TOKENS
from macllm_app.core.errors import EngineCrashed, EngineError
from macllm_app.core.types import (
    Finished,
    GenerationRequest,
    GenerationStats,
    LiveStats,
    LoadConfig,
    Message,
    TextDelta,
)
from tests.support.engine_events import collect_events, greedy_request

pytestmark = [pytest.mark.mlx, pytest.mark.slow]

QUESTION = (Message("user", "What is the capital of France?"),)


@pytest.fixture(scope="module")
def mlx_host(converted_default_model: Path) -> Iterator[EngineHost]:
    host = EngineHost()
    host.load(LoadConfig(model_path=str(converted_default_model), engine="mlx", n_ctx=1024))
    yield host
    host.shutdown()


def collect(host: EngineHost,
            request: GenerationRequest) -> tuple[str, list[int], GenerationStats]:
    return collect_events(host.stream(request))


def test_stream_answers_with_sane_stats(mlx_host: EngineHost) -> None:
    live: list[LiveStats] = []
    text, ids, stats = collect_events(
        mlx_host.stream(greedy_request(QUESTION, 8, reuse_cache=False)), live)
    assert "Paris" in text
    assert live and live[-1].generated_tokens <= stats.generated_tokens  # MLX's own speed
    assert stats.engine == "mlx"
    assert stats.generated_tokens == len(ids) > 0
    assert stats.prompt_tokens > 10 and stats.cached_tokens == 0
    assert stats.prompt_tps > 0 and stats.decode_tps > 0 and stats.ttft_s > 0
    assert stats.engine_peak_bytes > 50_000_000  # at least the weights
    assert stats.peak_rss_bytes > stats.engine_peak_bytes // 2


def test_turn_two_evaluates_only_the_new_tokens(mlx_host: EngineHost) -> None:
    reply, _, first = collect(mlx_host, greedy_request(QUESTION, 6, reuse_cache=False))
    turn2 = (*QUESTION, Message("assistant", reply), Message("user", "And of Spain?"))
    _, _, second = collect(mlx_host, greedy_request(turn2, 3))
    new_tokens = second.prompt_tokens - first.prompt_tokens - first.generated_tokens
    assert second.cached_tokens >= first.prompt_tokens
    assert second.prompt_tokens - second.cached_tokens <= new_tokens + 1
    assert second.prompt_tokens - second.cached_tokens < 20


def test_cancel_stops_within_a_token(mlx_host: EngineHost) -> None:
    received = 0
    at_cancel: list[int] = []
    stats = None
    for event in mlx_host.stream(greedy_request((Message("user", "Tell me a long story."),), 200)):
        if isinstance(event, TextDelta):
            received += len(event.token_ids)
            if not at_cancel:
                at_cancel.append(received)
                threading.Thread(target=mlx_host.cancel).start()
        elif isinstance(event, Finished):
            stats = event.stats
    assert stats is not None and stats.finish_reason == "cancelled"
    assert stats.generated_tokens == received
    assert received - at_cancel[0] <= FLUSH_TOKENS + 1


def test_host_killed_mid_reply_then_a_new_host_answers(converted_default_model: Path) -> None:
    host = EngineHost()
    try:
        host.load(LoadConfig(model_path=str(converted_default_model), engine="mlx", n_ctx=512))
        pid = host.pid
        assert pid is not None
        with pytest.raises(EngineCrashed, match="killed by SIGKILL"):
            for event in host.stream(greedy_request(QUESTION, 50)):
                if isinstance(event, TextDelta):
                    os.kill(pid, signal.SIGKILL)
        host.load(LoadConfig(model_path=str(converted_default_model), engine="mlx", n_ctx=512))
        assert host.pid != pid
        _, ids, stats = collect(host, greedy_request(QUESTION, 2))
        assert stats.generated_tokens == len(ids) == 2
    finally:
        host.shutdown()


def test_gguf_on_mlx_is_converted_once_then_reused(default_model: Path) -> None:
    from macllm_app.core.library.loading import load_in_host
    from macllm_app.core.library.mlx_copies import existing_mlx_copy

    assert existing_mlx_copy(default_model) is None  # a fresh MACLLM_HOME
    host = EngineHost()
    config = LoadConfig(model_path=str(default_model), engine="mlx", n_ctx=512)
    try:
        with pytest.raises(EngineError, match=r"^MLX runs model folders; .*\.gguf is a file"):
            host.load(config)  # the engine itself never converts: the copy comes first
        messages: list[tuple[float, str]] = []
        info = load_in_host(host, config, lambda fraction, message: messages.append(
            (fraction, message)))
        assert info.engine == "mlx"
        assert info.path == str(default_model)  # one library entry, whichever engine runs it
        assert info.name == default_model.stem
        copying = [f for f, m in messages if m.startswith("Making the MLX copy")]
        assert copying and max(copying) <= 0.8 < messages[-1][0], messages
        copy = existing_mlx_copy(default_model)
        assert copy is not None
        assert host.config is not None and host.config.model_path == str(copy)
        messages.clear()
        load_in_host(host, config, lambda fraction, message: messages.append(
            (fraction, message)))
        assert not any(m.startswith("Making the MLX copy") for _f, m in messages), messages
        text, _, _ = collect(host, greedy_request(QUESTION, 6))
        assert "Paris" in text
    finally:
        host.shutdown()
