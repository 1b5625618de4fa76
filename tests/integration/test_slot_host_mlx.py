"""The slot host with MLX (a tiny random-weight model): requests served one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from macllm_app.core.engines.slot_host import SlotHost
from macllm_app.core.errors import EngineError
from macllm_app.core.types import GenerationRequest, LoadConfig, Message, SamplingParams
from tests.support.mlx_tiny import make_tiny_mlx_model
from tests.support.slot_events import Gatherer, Reply

pytestmark = pytest.mark.mlx


def chat(text: str, max_tokens: int = 20, **sampling: object) -> GenerationRequest:
    params = replace(SamplingParams.greedy(max_tokens=max_tokens), **sampling)
    return GenerationRequest(messages=(Message("user", text),), sampling=params)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlotHost]:
    model = make_tiny_mlx_model(tmp_path_factory.mktemp("mlx-slots") / "tiny", quantize=True)
    slot_host = SlotHost(parallel=4)
    info = slot_host.load(LoadConfig(model_path=str(model), engine="mlx", n_ctx=2048))
    assert info.engine == "mlx"
    yield slot_host
    slot_host.shutdown()


def test_requests_run_one_after_another_with_the_same_replies(host: SlotHost) -> None:
    gather = Gatherer(host)
    alone = gather.run([chat("Hello")])[0]
    first, second = gather.run([chat("Hello"), chat("Hello")])
    assert first.ids == second.ids == alone.ids and len(alone.ids) == 20
    assert second.order[0] > first.order[-1]  # served one at a time
    assert "<|im_start|>" in host.chat_template()


def test_cancel_ends_the_running_request_and_the_next_one_runs(host: SlotHost) -> None:
    gather = Gatherer(host)

    def cancel_early(request_id: int, reply: Reply) -> None:
        if len(reply.ids) >= 3:
            host.cancel(request_id)

    running = gather.submit(chat("Story", max_tokens=1500, ignore_eos=True),
                            on_delta=cancel_early)
    waiting = gather.submit(chat("Hello", max_tokens=5))
    cancelled, after = gather.wait([running, waiting])
    assert cancelled.stats.finish_reason == "cancelled"
    assert cancelled.stats.generated_tokens < 1500
    assert after.stats.generated_tokens == 5


def test_what_mlx_cannot_do_is_refused_in_one_line(host: SlotHost) -> None:
    gather = Gatherer(host)
    schema, logprobs, penalty = gather.run([chat("Hi", json_schema='{"type": "object"}'),
                                            chat("Hi", logprobs=True),
                                            chat("Hi", presence_penalty=0.5)])
    assert isinstance(schema.end, EngineError) and "llama.cpp" in str(schema.end)
    assert isinstance(logprobs.end, EngineError)
    assert isinstance(penalty.end, EngineError) and "penalties" in str(penalty.end)
    with pytest.raises(EngineError, match=r"llama\.cpp"):
        host.embed(["hello"])
