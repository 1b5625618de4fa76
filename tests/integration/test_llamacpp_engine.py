"""The llama.cpp engine in-process, on the real default model (greedy, few tokens)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from macllm_app.core.errors import EngineError, TemplateError, UserError
from macllm_app.core.types import (
    Finished,
    GenerationRequest,
    GenerationStats,
    LoadConfig,
    Message,
    SamplingParams,
    TextDelta,
)
from tests.support.engine_events import collect_events

if TYPE_CHECKING:
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

pytestmark = pytest.mark.llamacpp

PROMPT = "The history of the Roman Empire is"


@pytest.fixture(scope="module")
def engine(default_model: Path) -> Iterator[LlamaCppEngine]:
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    eng = LlamaCppEngine()
    eng.load(LoadConfig(model_path=str(default_model), n_ctx=2048, n_threads=2),
             lambda f, m: None)
    yield eng
    eng.unload()


def run(engine: LlamaCppEngine,
        request: GenerationRequest) -> tuple[str, list[int], GenerationStats]:
    return collect_events(engine.stream(request, lambda: False))


def test_load_reports_model_info(default_model: Path) -> None:
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    progress: list[float] = []
    eng = LlamaCppEngine()
    info = eng.load(LoadConfig(model_path=str(default_model), n_ctx=1024, n_threads=2),
                    lambda f, m: progress.append(f))
    try:
        assert info.engine == "llama.cpp"
        assert info.architecture == "llama"
        assert info.n_ctx == 1024
        assert info.n_ctx_train >= 2048
        assert 100e6 < info.n_params < 200e6
        assert info.size_bytes == default_model.stat().st_size
        assert info.has_chat_template
        assert info.device in ("CPU", "GPU", "GPU (Metal)")
        assert (info.device == "CPU") == (info.gpu_layers == 0)
        assert progress[0] == 0.0
        assert progress[-1] == 1.0
        assert progress == sorted(progress)
        assert eng.count_tokens("Hello world") == 2
    finally:
        eng.unload()
    with pytest.raises(EngineError, match=r"^No model is loaded\.$"):
        eng.count_tokens("x")


@pytest.mark.parametrize("kind", ["missing", "folder", "not-gguf", "truncated-gguf"])
def test_bad_files_are_refused_in_python(tmp_path: Path, kind: str) -> None:
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    path = tmp_path / "model.gguf"
    if kind == "folder":
        path.mkdir()
    elif kind == "not-gguf":
        path.write_bytes(b"PK\x03\x04 this is a zip")
    elif kind == "truncated-gguf":
        path.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(UserError) as info:
        LlamaCppEngine().load(LoadConfig(model_path=str(path)), lambda f, m: None)
    message = str(info.value)
    assert "\n" not in message
    assert "model.gguf" in message
    if kind == "truncated-gguf":  # caught by our header validator, not by llama.cpp
        assert message == "model.gguf: file ends inside the tensor count (offset 8, file size 8)"


def test_greedy_matches_llama_cpp_high_level_api(engine: LlamaCppEngine,
                                                 default_model: Path) -> None:
    import llama_cpp

    # Our context leaves flash attention on "auto" (enabled on CPU), as llama.cpp's
    # own tools do; the high-level class defaults to off, so ask for it explicitly.
    llm = llama_cpp.Llama(str(default_model), n_ctx=2048, n_threads=2, flash_attn=True,
                          verbose=False)
    try:
        tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
        reference: list[int] = []
        for token in llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0):
            reference.append(token)
            if len(reference) == 20:
                break
    finally:
        llm.close()
    request = GenerationRequest(prompt=PROMPT, sampling=SamplingParams.greedy(max_tokens=20),
                                reuse_cache=False)
    _, ids, stats = run(engine, request)
    assert stats.prompt_tokens == len(tokens)
    assert ids == reference


def test_chat_request_uses_the_template(engine: LlamaCppEngine) -> None:
    request = GenerationRequest(messages=(Message("user", "Say hi."),),
                                sampling=SamplingParams.greedy(max_tokens=8))
    text, ids, stats = run(engine, request)
    assert stats.generated_tokens == len(ids) <= 8
    assert "<|im_start|>" not in text
    assert stats.engine == "llama.cpp"
    assert stats.model == "SmolLM2-135M-Instruct.Q4_1"


def test_empty_request_is_a_clear_error(engine: LlamaCppEngine) -> None:
    with pytest.raises(EngineError, match="no messages and no prompt"):
        run(engine, GenerationRequest(sampling=SamplingParams.greedy(4)))


def test_context_full_mid_generation_ends_with_length(default_model: Path) -> None:
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    eng = LlamaCppEngine()
    eng.load(LoadConfig(model_path=str(default_model), n_ctx=128, n_batch=64, n_threads=2),
             lambda f, m: None)
    try:
        request = GenerationRequest(prompt="Once upon a time, " * 8,
                                    sampling=SamplingParams.greedy(max_tokens=1000))
        _, ids, stats = run(eng, request)
        assert stats.finish_reason == "length"
        # llama.cpp pads the window (to 256 here); the last sampled token needs no slot.
        assert stats.prompt_tokens + stats.generated_tokens == stats.n_ctx + 1
        assert stats.generated_tokens == len(ids) > 10
        # The engine is still usable afterwards.
        _, _, again = run(eng, GenerationRequest(prompt="Hello",
                                                 sampling=SamplingParams.greedy(4)))
        assert again.generated_tokens > 0
    finally:
        eng.unload()


def test_long_conversation_drops_oldest_messages(default_model: Path) -> None:
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    eng = LlamaCppEngine()
    eng.load(LoadConfig(model_path=str(default_model), n_ctx=256, n_threads=2),
             lambda f, m: None)
    try:
        history: list[Message] = [Message("system", "You are terse.")]
        for i in range(12):
            history.append(Message("user", f"Tell me fact number {i} about the sea."))
            history.append(Message("assistant", f"Fact {i}: the sea is large and salty."))
        history.append(Message("user", "Thanks!"))
        _, _, stats = run(eng, GenerationRequest(messages=tuple(history),
                                                 sampling=SamplingParams.greedy(8)))
        assert stats.dropped_messages > 0
        assert stats.dropped_messages % 2 == 0  # whole turns
        assert stats.prompt_tokens <= stats.n_ctx - 64
        too_long = (Message("user", "sea " * 400),)
        with pytest.raises(EngineError, match=r"^The message is too long for the context "
                                              r"window \(\d+ tokens > \d+\)\.$"):
            run(eng, GenerationRequest(messages=too_long, sampling=SamplingParams.greedy(8)))
    finally:
        eng.unload()


def test_hostile_template_override_fails_the_load(default_model: Path) -> None:
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    eng = LlamaCppEngine()
    config = LoadConfig(model_path=str(default_model), n_threads=2,
                        chat_template="{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    with pytest.raises(TemplateError, match=r"^The model's chat template is unsafe: "):
        eng.load(config, lambda f, m: None)
    with pytest.raises(EngineError, match="No model is loaded"):
        eng.count_tokens("x")


def test_llama_cpp_logging_stays_off_stderr(default_model: Path) -> None:
    script = (
        "from macllm_app.core.engines.llamacpp import LlamaCppEngine\n"
        "from macllm_app.core.types import *\n"
        "e = LlamaCppEngine()\n"
        f"e.load(LoadConfig(model_path={str(default_model)!r}, n_ctx=256, n_threads=2),"
        " lambda f, m: None)\n"
        "req = GenerationRequest(prompt='Hi', sampling=SamplingParams.greedy(max_tokens=2))\n"
        "print(sum(1 for _ in e.stream(req, lambda: False)))\n"
        "e.unload()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=False, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert int(result.stdout) >= 2


def test_seeded_sampling_repeats_and_unseeded_varies(engine: LlamaCppEngine) -> None:
    def sampled(seed: int | None) -> list[int]:
        params = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=seed,
                                max_tokens=12)
        return run(engine, GenerationRequest(prompt=PROMPT, sampling=params))[1]

    assert sampled(42) == sampled(42)
    unseeded = {tuple(sampled(None)) for _ in range(3)}
    assert len(unseeded) > 1


def test_should_stop_is_checked_once_per_token(engine: LlamaCppEngine) -> None:
    calls = 0

    def should_stop() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 5

    request = GenerationRequest(prompt=PROMPT, sampling=SamplingParams.greedy(max_tokens=50))
    events = list(engine.stream(request, should_stop))
    assert isinstance(events[-1], Finished)
    stats = events[-1].stats
    assert stats.finish_reason == "cancelled"
    assert stats.generated_tokens == calls == 5
    assert sum(len(e.token_ids) for e in events if isinstance(e, TextDelta)) == 5


def test_cancel_during_a_long_prompt_keeps_what_was_evaluated(default_model: Path) -> None:
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    eng = LlamaCppEngine()
    eng.load(LoadConfig(model_path=str(default_model), n_ctx=512, n_batch=16, n_threads=2),
             lambda f, m: None)
    try:
        request = GenerationRequest(prompt="The sea is wide and deep. " * 12,
                                    sampling=SamplingParams.greedy(max_tokens=4))
        events = list(eng.stream(request, lambda: True))
        assert len(events) == 1
        assert isinstance(events[0], Finished)
        stats = events[0].stats
        assert stats.finish_reason == "cancelled"
        assert stats.generated_tokens == 0
        _, ids, again = run(eng, request)
        assert again.cached_tokens == 16  # the first chunk was kept
        assert again.generated_tokens == len(ids) == 4
    finally:
        eng.unload()


def test_a_persistent_thread_pool_serves_the_context(engine: LlamaCppEngine,
                                                      default_model: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """As in llama-bench: one pool for the context's life, not threads per token;
    the output is the same as with ggml's per-graph threads."""
    import psutil

    from macllm_app.core.engines import llamacpp_threadpool
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    assert engine._pool is not None
    request = GenerationRequest(prompt=PROMPT, sampling=SamplingParams.greedy(max_tokens=16),
                                reuse_cache=False)
    _, pooled_ids, _ = run(engine, request)
    threads = psutil.Process().num_threads()
    run(engine, request)
    assert psutil.Process().num_threads() == threads

    monkeypatch.setattr(llamacpp_threadpool.ThreadPool, "attach",
                        classmethod(lambda cls, ctx, n_threads: None))
    plain = LlamaCppEngine()
    plain.load(LoadConfig(model_path=str(default_model), n_ctx=2048, n_threads=2),
               lambda f, m: None)
    try:
        assert plain._pool is None
        assert run(plain, request)[1] == pooled_ids
    finally:
        plain.unload()
