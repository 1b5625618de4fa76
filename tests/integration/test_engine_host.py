"""The engine host process running the llama.cpp engine on the real default model."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from macllm_app.core import paths
from macllm_app.core.engines.host import EngineHost
from macllm_app.core.engines.host_main import FLUSH_TOKENS
from macllm_app.core.errors import EngineCrashed, EngineError, RemoteBug, UserError
from macllm_app.core.logs import HOST_LOG
from macllm_app.core.types import (
    GenerationRequest,
    GenerationStats,
    HostMemory,
    LiveStats,
    LoadConfig,
    Message,
    SamplingParams,
    TextDelta,
)
from tests.support.engine_events import collect_events, greedy_request, stream_and_cancel

pytestmark = pytest.mark.llamacpp

STORY = (Message("user", "Write a long story about a dragon who learns to bake bread."),)


def collect(host: EngineHost, request: GenerationRequest) -> tuple[str, list[int], GenerationStats]:
    return collect_events(host.stream(request))


@pytest.fixture
def fresh_host(default_model: Path) -> Iterator[EngineHost]:
    host = EngineHost()
    host.load(LoadConfig(model_path=str(default_model), n_ctx=1024, n_threads=2))
    yield host
    host.shutdown()


def test_stream_is_deterministic_with_sane_stats(llama_host: EngineHost) -> None:
    request = greedy_request(STORY, 24, reuse_cache=False)
    text1, ids1, stats1 = collect(llama_host, request)
    text2, ids2, stats2 = collect(llama_host, request)
    assert (text1, ids1) == (text2, ids2)
    assert text1.strip()
    for stats in (stats1, stats2):
        assert stats.generated_tokens == len(ids1) == 24
        assert stats.finish_reason == "length"
        assert stats.decode_tps > 0
        assert stats.prompt_tps > 0
        assert 0 < stats.ttft_s < 120  # generous: the test machine's cores are shared
        assert stats.prompt_tokens > 10
        assert stats.cached_tokens == 0
        assert stats.peak_rss_bytes > 50_000_000
        assert stats.n_ctx == 2048
        assert stats.engine == "llama.cpp"
        assert stats.dropped_messages == 0


def test_max_tokens_gives_length(llama_host: EngineHost) -> None:
    _, ids, stats = collect(llama_host, greedy_request(STORY, 5))
    assert stats.finish_reason == "length"
    assert stats.generated_tokens == len(ids) == 5


def test_stop_strings_are_honoured(llama_host: EngineHost) -> None:
    full, _, _ = collect(llama_host, greedy_request(STORY, 40))
    words = full.split()
    assert len(words) > 6
    stop = " " + words[5]
    expected = full[: full.index(stop)]
    text, ids, stats = collect(llama_host, greedy_request(STORY, 40, stop=(stop, "@@never@@")))
    assert stats.finish_reason == "stop"
    assert text == expected
    assert stop not in text
    assert stats.generated_tokens == len(ids) < 40


def test_cancel_from_another_thread_stops_within_a_token(llama_host: EngineHost) -> None:
    received, at_cancel, stats = stream_and_cancel(llama_host, greedy_request(STORY, 2000),
                                                   0.15)
    assert stats is not None
    assert stats.finish_reason == "cancelled"
    assert stats.generated_tokens == received
    # The engine stops at the next token; what is in flight on top of that is at most
    # a batch or two of the host's relay (8 tokens each) not yet read by this thread.
    assert received - at_cancel <= 2 * FLUSH_TOKENS + 1
    # The host serves the next request normally.
    _, _, after = collect(llama_host, greedy_request(STORY, 3))
    assert after.finish_reason == "length"


def test_multi_turn_reuses_the_kv_cache(llama_host: EngineHost) -> None:
    turn1 = (Message("system", "You are a helpful assistant."),
             Message("user", "Name three fruits."))
    reply, _, stats1 = collect(llama_host, greedy_request(turn1, 16, reuse_cache=False))
    turn2 = (*turn1, Message("assistant", reply), Message("user", "And three vegetables?"))
    _, _, stats2 = collect(llama_host, greedy_request(turn2, 4))
    assert stats2.cached_tokens >= stats1.prompt_tokens
    evaluated = stats2.prompt_tokens - stats2.cached_tokens
    new_tokens = stats2.prompt_tokens - stats1.prompt_tokens - stats1.generated_tokens
    # Only the new user turn (plus the one sampled token never fed back) is evaluated.
    assert evaluated <= new_tokens + 1
    assert evaluated < 30
    # reuse_cache=False evaluates everything again.
    _, _, stats3 = collect(llama_host, greedy_request(turn2, 2, reuse_cache=False))
    assert stats3.cached_tokens == 0


def test_utf8_deltas_are_whole_characters(llama_host: EngineHost, default_model: Path) -> None:
    import llama_cpp

    prompt = "Emojis: 😀 🎉 🍕 ❤️ 🚀 🌍 😀 🎉 🍕 ❤️ 🚀 🌍 😀 🎉 🍕 ❤️ 🚀 🌍 😀 🎉"
    request = GenerationRequest(prompt=prompt, sampling=SamplingParams.greedy(max_tokens=24))
    deltas: list[str] = []
    ids: list[int] = []
    for event in llama_host.stream(request):
        if isinstance(event, TextDelta):
            assert isinstance(event.text, str)
            event.text.encode("utf-8")  # no lone surrogates / split characters
            assert "\ufffd" not in event.text
            deltas.append(event.text)
            ids.extend(event.token_ids)
    text = "".join(deltas)
    assert any(ord(ch) > 0x2000 for ch in text), text
    vocab = llama_cpp.Llama(str(default_model), vocab_only=True, verbose=False)
    try:
        assert text == vocab.detokenize(ids).decode("utf-8", errors="replace")
    finally:
        vocab.close()


@pytest.mark.parametrize(("sig", "words"), [(signal.SIGKILL, "killed by SIGKILL"),
                                            (signal.SIGSEGV, "crashed with SIGSEGV")])
def test_crash_mid_reply_is_reported_and_a_new_host_works(
        fresh_host: EngineHost, default_model: Path, sig: signal.Signals, words: str) -> None:
    host = fresh_host
    pid = host.pid
    assert pid is not None
    with pytest.raises(EngineCrashed) as info:
        for event in host.stream(greedy_request(STORY, 2000)):
            if isinstance(event, TextDelta):
                os.kill(pid, sig)
    assert str(info.value).startswith(f"The engine stopped unexpectedly ({words}")
    assert not host.is_alive()
    host.load(LoadConfig(model_path=str(default_model), n_ctx=1024, n_threads=2))
    assert host.pid != pid
    _, ids, stats = collect(host, greedy_request(STORY, 3))
    assert stats.generated_tokens == len(ids) == 3


def test_unload_then_generate_is_a_clear_error(fresh_host: EngineHost) -> None:
    fresh_host.unload()
    with pytest.raises(EngineError, match=r"^No model is loaded\.$"):
        collect(fresh_host, greedy_request(STORY, 3))
    with pytest.raises(EngineError, match=r"^No model is loaded\.$"):
        fresh_host.count_tokens("hello")
    assert fresh_host.is_alive()


def test_hostile_template_is_refused_and_the_host_survives(fresh_host: EngineHost,
                                                          default_model: Path) -> None:
    for source in ("{{ ''.__class__.__mro__[1].__subclasses__() }}",
                   "{{ cycler.__init__.__globals__.os.popen('id').read() }}"):
        config = LoadConfig(model_path=str(default_model), n_ctx=512, n_threads=2,
                            chat_template=source)
        with pytest.raises(EngineError) as info:
            fresh_host.load(config)
        assert str(info.value).startswith("The model's chat template is unsafe: ")
        assert "uid=" not in str(info.value)
        assert fresh_host.is_alive()
    fresh_host.load(LoadConfig(model_path=str(default_model), n_ctx=512, n_threads=2))
    _, _, stats = collect(fresh_host, greedy_request(STORY, 3))
    assert stats.generated_tokens == 3


def test_count_tokens_through_the_host(llama_host: EngineHost) -> None:
    assert llama_host.count_tokens("Hello world") == 2


def test_live_stats_report_the_engines_speed_while_it_generates(llama_host: EngineHost) -> None:
    live: list[LiveStats] = []
    _, ids, stats = collect_events(
        llama_host.stream(greedy_request(STORY, 300, reuse_cache=False, ignore_eos=True)), live)
    assert len(ids) == 300
    assert live, "no LiveStats during a reply of several seconds"
    counts = [event.generated_tokens for event in live]
    assert counts == sorted(counts) and counts[-1] <= stats.generated_tokens
    assert all(event.ttft_s == pytest.approx(stats.ttft_s, abs=1e-6) for event in live)
    assert 0.5 * stats.decode_tps < live[-1].decode_tps < 2 * stats.decode_tps


def test_a_bug_in_the_host_arrives_as_a_bug_with_its_traceback(
        fresh_host: EngineHost, caplog: pytest.LogCaptureFixture) -> None:
    malformed = GenerationRequest(messages=STORY, sampling=None)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="macllm.engine.host"), \
            pytest.raises(RemoteBug) as info:
        collect(fresh_host, malformed)
    bug = info.value
    assert not isinstance(bug, UserError), "a bug is not shown as a user's mistake"
    assert bug.summary.startswith("AttributeError: ")
    assert "Traceback" in bug.remote_traceback and "request_tokens" in bug.remote_traceback
    assert "bug in the engine host" in caplog.text  # in the app's log
    host_log = (paths.logs_dir() / HOST_LOG).read_text()
    assert "AttributeError" in host_log  # and in the host's own
    assert fresh_host.is_alive()
    _, ids, _ = collect(fresh_host, greedy_request(STORY, 2))
    assert len(ids) == 2


def test_the_host_reports_its_memory(fresh_host: EngineHost) -> None:
    memory = fresh_host.memory()
    assert isinstance(memory, HostMemory)
    assert 50_000_000 < memory.rss_bytes <= memory.peak_rss_bytes * 1.01  # two counters
