"""A chat's engine choice in its settings, compared replies, and the rules for
"Run on the other engine" (no engine, no widgets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macllm_app.core.chat.comparison import comparison_rows
from macllm_app.core.chat.engine_choice import (
    ModelEngines,
    compare_button,
    compare_target,
    resolve_engine,
)
from macllm_app.core.chat.records import StoredMessage, check_settings, engine_choice
from macllm_app.core.chat.session import ChatSession, sampling_params
from macllm_app.core.chat.store import ChatStore
from macllm_app.core.types import (
    Event,
    Finished,
    GenerationRequest,
    GenerationStats,
    ModelInfo,
    Role,
    TextDelta,
)

BOTH = ("llama.cpp", "mlx")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    with ChatStore(tmp_path / "chats.sqlite3") as chat_store:
        yield chat_store


def test_engine_choice_is_kept_in_the_conversation_settings(store: ChatStore) -> None:
    conversation = store.create_conversation(settings={"temperature": 0.2, "engine": "mlx"})
    assert engine_choice(conversation.settings) == "mlx"
    assert sampling_params(conversation.settings).temperature == 0.2
    updated = store.update_conversation(conversation.id, settings={"temperature": 0.2,
                                                                   "engine": "auto"})
    assert updated.settings == {"temperature": 0.2}
    assert engine_choice(updated.settings) is None


def test_an_unknown_engine_is_refused() -> None:
    assert check_settings({"engine": None}) == {}
    with pytest.raises(ValueError, match="unknown engine"):
        check_settings({"engine": "vulkan"})
    assert engine_choice({"engine": "vulkan"}) is None


class OneReplyHost:
    model: ModelInfo | None = ModelInfo("m.gguf", "m", "mlx", "llama", 2048, 2048, 1, 1,
                                        True, 0, "CPU")

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        yield TextDelta("hi", (1,))
        yield Finished(GenerationStats(generated_tokens=1))

    def cancel(self) -> None:
        pass


def test_a_compared_reply_names_the_reply_it_is_compared_with(store: ChatStore) -> None:
    conversation = store.create_conversation()
    question = store.add_message(conversation.id, "user", "Hi")
    first = store.start_reply(conversation.id, question.id)
    store.finish_reply(first.id, "hello", "complete", {"engine": "llama.cpp"})
    session = ChatSession(store, OneReplyHost(), conversation.id, compare_with=first.id)
    list(session.regenerate())
    second = store.active_path(conversation.id)[-1]
    assert second.parent_id == question.id and second.id != first.id
    assert second.stats is not None
    assert second.stats["compared_with"] == first.id
    assert second.stats["engine"] == "mlx"


def _reply(stats: dict[str, Any] | None, role: Role = "assistant") -> StoredMessage:
    return StoredMessage(1, 1, None, role, "text", "complete", None, stats, 0.0, 0.0)


def test_the_other_engine_is_the_one_that_did_not_write_the_reply() -> None:
    gguf = ModelEngines("m.gguf", "gguf", BOTH, BOTH)
    assert compare_target(_reply({"engine": "llama.cpp"}), None, gguf) == ("mlx", "")
    assert compare_target(_reply({"engine": "mlx"}), "mlx", gguf) == ("llama.cpp", "")
    assert compare_target(_reply(None), "mlx", gguf) == ("llama.cpp", "")
    assert compare_target(_reply({}, "user"), None, gguf)[0] is None
    assert compare_target(None, None, gguf)[0] is None
    assert compare_target(_reply({"engine": "llama.cpp"}), None, None) == (
        None, "Checking which engines run this model…")


def test_why_the_other_engine_cannot_run_the_model() -> None:
    folder = ModelEngines("tiny", "mlx", ("mlx",), BOTH)
    assert compare_target(_reply({"engine": "mlx"}), None, folder) == (
        None, "llama.cpp runs GGUF files; this model is an MLX folder.")
    not_installed = ModelEngines("m.gguf", "gguf", BOTH, ("llama.cpp",))
    assert not_installed.why_not("mlx") == "MLX is not installed."
    qwen = ModelEngines("q.gguf", "gguf", ("llama.cpp",), BOTH)
    assert qwen.why_not("mlx").startswith("MLX runs GGUF files of llama models")
    assert qwen.why_not("llama.cpp") == ""
    broken = ModelEngines("b.gguf", "", (), BOTH, "b.gguf: not a GGUF file")
    assert broken.why_not("mlx") == "The model could not be checked: b.gguf: not a GGUF file"


def test_comparison_rows_put_the_two_replies_side_by_side() -> None:
    before = {"engine": "llama.cpp", "ttft_s": 0.123, "prompt_tps": 512.0, "decode_tps": 48.14,
              "generated_tokens": 12, "prompt_tokens": 30, "peak_rss_bytes": 3 * 1024**3}
    after = {"engine": "mlx", "ttft_s": 1.5, "decode_tps": 6.0, "generated_tokens": 12,
             "peak_rss_bytes": 250 * 1024**2, "model": "smollm2 + run-1"}
    assert comparison_rows(before, after) == [
        ("Engine", "llama.cpp", "mlx"),
        ("Time to first token", "0.12 s", "1.50 s"),
        ("Prompt", "512.0 tok/s", "–"),
        ("Decode", "48.1 tok/s", "6.0 tok/s"),
        ("Tokens", "12 (prompt 30)", "12"),
        ("Peak memory", "3.0 GB", "250.0 MB"),
        ("Model", "–", "smollm2 + run-1"),
    ]
    assert comparison_rows(None, {})[0] == ("Engine", "–", "–")


def test_a_chat_runs_on_its_chosen_engine_only_where_that_engine_runs_the_model() -> None:
    gguf = ModelEngines("m.gguf", "gguf", BOTH, BOTH)
    folder = ModelEngines("tiny", "mlx", ("mlx",), BOTH)
    assert resolve_engine("mlx", gguf, "llama.cpp") == ("mlx", "")
    assert resolve_engine(None, gguf, "llama.cpp") == (None, "")
    assert resolve_engine("mlx", None, "llama.cpp") == (None, ""), "unknown engines: automatic"
    engine, note = resolve_engine("llama.cpp", folder, "mlx")
    assert engine is None
    assert note == ("llama.cpp runs GGUF files; this model is an MLX folder. "
                    "Running on MLX instead.")


def test_the_compare_button_names_its_engine_or_says_why_not() -> None:
    text, enabled, tip = compare_button("mlx", "")
    assert (text, enabled) == ("Run on MLX", True) and "MLX" in tip
    assert compare_button(None, "Wait for the reply to finish.") == (
        "Run on the other engine", False, "Wait for the reply to finish.")
