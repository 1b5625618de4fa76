"""The MLX engine in-process, on tiny random-weight mlx-lm models built by the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from macllm_app.core.errors import EngineError, ModelFileError, TemplateError
from macllm_app.core.types import (
    GenerationRequest,
    GenerationStats,
    LoadConfig,
    Message,
    SamplingParams,
    TextDelta,
)
from tests.support.engine_events import collect_events, greedy_request
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = pytest.mark.mlx

QUESTION = (Message("system", "Be brief."), Message("user", "Say something random."))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mlx_model(tmp_path_factory.mktemp("mlx") / "tiny-q4", quantize=True)


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Iterator[object]:
    from macllm_app.core.engines.mlx_engine import MLXEngine

    eng = MLXEngine()
    eng.load(LoadConfig(model_path=str(tiny_model), engine="mlx", n_ctx=512), lambda f, m: None)
    yield eng
    eng.unload()


def run(engine: object, request: GenerationRequest,
        should_stop: object = lambda: False) -> tuple[str, list[int], GenerationStats]:
    return collect_events(engine.stream(request, should_stop))  # type: ignore[attr-defined]


def raw_greedy_ids(model_dir: Path, messages: tuple[Message, ...], n: int) -> list[int]:
    """Plain mlx-lm: load, render with the tokenizer's template, generate_step greedily."""
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    model, tokenizer = load(str(model_dir))
    prompt = tokenizer.apply_chat_template([{"role": m.role, "content": m.content}
                                            for m in messages], add_generation_prompt=True)
    ids: list[int] = []
    for token, _ in generate_step(mx.array(prompt), model, max_tokens=n):
        if token in tokenizer.eos_token_ids:
            break
        ids.append(token)
    return ids


def test_load_reports_the_model(engine: object, tiny_model: Path) -> None:
    info = engine._info  # type: ignore[attr-defined]
    assert info.engine == "mlx"
    assert info.architecture == "llama"
    assert info.n_ctx == 512
    assert info.n_ctx_train == 2048
    assert info.has_chat_template
    assert info.device == "CPU"
    assert info.n_params > 10_000


def test_greedy_stream_matches_plain_mlx_lm(engine: object, tiny_model: Path) -> None:
    request = greedy_request(QUESTION, 24, reuse_cache=False)
    text, ids, stats = run(engine, request)
    assert ids == raw_greedy_ids(tiny_model, QUESTION, 24)[: len(ids)]
    assert stats.generated_tokens == len(ids)
    assert stats.finish_reason in ("length", "stop")
    if stats.finish_reason == "length":
        assert len(ids) == 24
    assert stats.prompt_tokens > 10
    assert stats.cached_tokens == 0
    assert stats.decode_tps > 0 and stats.prompt_tps > 0 and stats.ttft_s > 0
    assert stats.engine == "mlx" and stats.model == tiny_model.name
    assert stats.peak_rss_bytes > 10_000_000
    assert stats.engine_peak_bytes > 0
    tokenizer = engine._tokenizer  # type: ignore[attr-defined]
    assert text == tokenizer.decode(ids)


def test_multi_turn_evaluates_only_the_new_tokens(engine: object) -> None:
    reply, _, first = run(engine, greedy_request(QUESTION, 8, reuse_cache=False))
    turn2 = (*QUESTION, Message("assistant", reply), Message("user", "Again, please."))
    _, _, second = run(engine, greedy_request(turn2, 4))
    assert second.cached_tokens >= first.prompt_tokens
    new_tokens = second.prompt_tokens - first.prompt_tokens - first.generated_tokens
    assert second.prompt_tokens - second.cached_tokens <= new_tokens + 1


def test_edit_trims_the_cache_to_the_common_prefix(engine: object) -> None:
    original = (*QUESTION, Message("assistant", "ok"), Message("user", "Tell me a long story."))
    run(engine, greedy_request(original, 4))
    edited = (*QUESTION, Message("assistant", "ok"), Message("user", "Tell me a short joke."))
    _, ids_cached, stats = run(engine, greedy_request(edited, 6))
    tokens = engine._cached  # type: ignore[attr-defined]
    assert 0 < stats.cached_tokens < stats.prompt_tokens - 1
    assert len(tokens) >= stats.prompt_tokens
    # The trimmed cache gives the same tokens as a fresh evaluation.
    _, ids_fresh, fresh = run(engine, greedy_request(edited, 6, reuse_cache=False))
    assert fresh.cached_tokens == 0
    assert ids_cached == ids_fresh


def test_regenerate_reuses_all_but_the_last_prompt_token(engine: object) -> None:
    run(engine, greedy_request(QUESTION, 5))
    _, _, again = run(engine, greedy_request(QUESTION, 5))
    assert again.cached_tokens == again.prompt_tokens - 1


def test_should_stop_is_checked_once_per_token(engine: object) -> None:
    seen = 0
    checks_during_decode = 0

    def should_stop() -> bool:
        nonlocal checks_during_decode
        if seen:
            checks_during_decode += 1
        return seen >= 5

    stats = None
    request = greedy_request(QUESTION, 50, reuse_cache=False)
    for event in engine.stream(request, should_stop):  # type: ignore[attr-defined]
        if isinstance(event, TextDelta):
            seen += len(event.token_ids)
        else:
            stats = event.stats
    assert stats is not None
    assert stats.finish_reason == "cancelled"
    assert stats.generated_tokens == seen == 5
    assert checks_during_decode == 5


def test_cancel_before_the_prompt_is_evaluated(engine: object) -> None:
    _, ids, stats = run(engine, greedy_request(QUESTION, 5, reuse_cache=False), lambda: True)
    assert stats.finish_reason == "cancelled"
    assert ids == [] and stats.generated_tokens == 0
    _, ids, after = run(engine, greedy_request(QUESTION, 3))
    assert after.generated_tokens == len(ids) > 0


def test_stop_strings_end_the_reply(engine: object) -> None:
    text, _, _ = run(engine, greedy_request(QUESTION, 30, reuse_cache=False))
    assert len(text) > 6
    stop = text[3:6]
    cut, _, stats = run(engine, greedy_request(QUESTION, 30, stop=(stop,), reuse_cache=False))
    assert stats.finish_reason == "stop"
    assert cut == text[: text.index(stop)]


def test_seeded_sampling_repeats_and_unseeded_varies(engine: object) -> None:
    def sampled(seed: int | None) -> list[int]:
        params = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0,
                                repeat_penalty=1.2, seed=seed, max_tokens=12)
        return run(engine, GenerationRequest(messages=QUESTION, sampling=params))[1]

    assert sampled(7) == sampled(7)
    assert len({tuple(sampled(None)) for _ in range(3)}) > 1


def test_token_id_prompts_are_checked(engine: object) -> None:
    _, ids, stats = run(engine, GenerationRequest(prompt_tokens=(5, 6, 7),
                                                  sampling=SamplingParams.greedy(max_tokens=3)))
    assert stats.prompt_tokens == 3 and len(ids) == stats.generated_tokens
    with pytest.raises(EngineError, match="outside the vocabulary"):
        run(engine, GenerationRequest(prompt_tokens=(5, 10**6)))


def test_long_conversation_drops_oldest_turns(engine: object) -> None:
    history: list[Message] = [Message("system", "Keep me.")]
    for i in range(40):
        history += [Message("user", f"Question {i} " + "x" * 40),
                    Message("assistant", f"Answer {i} " + "y" * 40)]
    history.append(Message("user", "Last question"))
    _, _, stats = run(engine, greedy_request(tuple(history), 4))
    assert stats.dropped_messages > 0
    assert stats.prompt_tokens <= 512 - 64


def test_folders_that_would_run_code_are_refused(tmp_path: Path) -> None:
    from macllm_app.core.engines.mlx_engine import MLXEngine

    folder = make_tiny_mlx_model(tmp_path / "evil")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_file": "evil.py"}))
    with pytest.raises(ModelFileError, match="custom code"):
        MLXEngine().load(LoadConfig(model_path=str(folder), engine="mlx"), lambda f, m: None)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(ModelFileError, match="must not contain code"):
        MLXEngine().load(LoadConfig(model_path=str(folder), engine="mlx"), lambda f, m: None)


def test_hostile_template_fails_the_load(tmp_path: Path) -> None:
    from macllm_app.core.engines.mlx_engine import MLXEngine

    folder = make_tiny_mlx_model(tmp_path / "hostile")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    config_path.write_text(json.dumps(config))
    with pytest.raises(TemplateError):
        MLXEngine().load(LoadConfig(model_path=str(folder), engine="mlx"), lambda f, m: None)


def test_broken_weights_are_a_clear_error(tmp_path: Path) -> None:
    from macllm_app.core.engines.mlx_engine import MLXEngine

    folder = make_tiny_mlx_model(tmp_path / "broken")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(EngineError, match=r"^MLX could not load broken: "):
        MLXEngine().load(LoadConfig(model_path=str(folder), engine="mlx"), lambda f, m: None)


@pytest.mark.parametrize(("key", "value"), [
    ("hidden_size", 0), ("num_attention_heads", 0), ("num_key_value_heads", -1),
    ("vocab_size", -1), ("num_hidden_layers", 2**40), ("intermediate_size", "x"),
    ("rms_norm_eps", 0), ("rope_theta", "x"),
])
def test_hostile_config_values_are_a_one_line_load_error(tmp_path: Path, key: str,
                                                         value: object) -> None:
    from macllm_app.core.engines.mlx_engine import MLXEngine

    folder = make_tiny_mlx_model(tmp_path / "hostile-config")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, key: value}))
    engine = MLXEngine()
    with pytest.raises(EngineError, match=r"^MLX could not load hostile-config: ") as info:
        engine.load(LoadConfig(model_path=str(folder), engine="mlx"), lambda f, m: None)
    assert "\n" not in str(info.value)
    (folder / "config.json").write_text(json.dumps(config))
    engine.load(LoadConfig(model_path=str(folder), engine="mlx", n_ctx=256), lambda f, m: None)
    _, ids, _ = run(engine, GenerationRequest(prompt="Hi",
                                              sampling=SamplingParams.greedy(max_tokens=2)))
    assert len(ids) == 2
