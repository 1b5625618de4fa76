"""The slot host with llama.cpp: several requests decoded together on the default model."""

from __future__ import annotations

import json
import math
import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from macllm_app.core.engines.slot_host import SlotHost
from macllm_app.core.errors import EngineCrashed, EngineError
from macllm_app.core.types import (
    Finished,
    GenerationRequest,
    LoadConfig,
    Message,
    SamplingParams,
)
from tests.support.slot_events import Gatherer, Reply

pytestmark = pytest.mark.llamacpp

PARALLEL = 4
N_CTX = 1024
#: Batched kernels may round differently in the last bits, so greedy replies decoded
#: together are compared with the same replies decoded alone over their first tokens.
AGREEING_TOKENS = 8
QUESTIONS = ("Tell me a story about a dragon.", "What is the capital of France?",
             "Write a poem about the sea.", "List three colours.")
PERSON_SCHEMA = json.dumps({
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                   "pets": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
    "required": ["name", "age", "pets"],
})


def chat(question: str, max_tokens: int = 24, **sampling: object) -> GenerationRequest:
    params = replace(SamplingParams.greedy(max_tokens=max_tokens), **sampling)
    return GenerationRequest(messages=(Message("user", question),), sampling=params)


@pytest.fixture(scope="module")
def host(default_model: Path) -> Iterator[SlotHost]:
    slot_host = SlotHost(parallel=PARALLEL)
    info = slot_host.load(LoadConfig(model_path=str(default_model), n_ctx=N_CTX, n_threads=2))
    assert info.engine == "llama.cpp" and info.n_ctx == N_CTX
    yield slot_host
    slot_host.shutdown()


@pytest.fixture
def gather(host: SlotHost) -> Gatherer:
    return Gatherer(host)


def test_requests_decoded_together_agree_with_each_alone(gather: Gatherer) -> None:
    alone = [gather.run([chat(q, ignore_eos=True)])[0] for q in QUESTIONS]
    together = gather.run([chat(q, ignore_eos=True) for q in QUESTIONS])
    for single, batched in zip(alone, together, strict=True):
        assert single.stats.generated_tokens == len(single.ids) > AGREEING_TOKENS
        assert batched.ids[:AGREEING_TOKENS] == single.ids[:AGREEING_TOKENS]
        assert batched.stats.finish_reason == "length"
    # decoded together: every request streamed its first token before any of them ended
    first_end = min(reply.order[-1] for reply in together)
    assert all(reply.order[0] < first_end for reply in together)


def test_more_requests_than_slots_wait_their_turn(gather: Gatherer) -> None:
    replies = gather.run([chat(q, max_tokens=12, ignore_eos=True)
                          for q in (*QUESTIONS, *QUESTIONS[:2])])
    assert all(reply.stats.generated_tokens == 12 for reply in replies)
    first_end = min(reply.order[-1] for reply in replies[:PARALLEL])
    assert all(reply.order[0] > first_end for reply in replies[PARALLEL:])
    assert replies[PARALLEL].ids[:AGREEING_TOKENS] == replies[0].ids[:AGREEING_TOKENS]


def test_same_prompt_again_reuses_the_slot_cache(gather: Gatherer) -> None:
    first = gather.run([chat(QUESTIONS[1], max_tokens=4)])[0]
    again = gather.run([chat(QUESTIONS[1], max_tokens=4)])[0]
    assert again.stats.cached_tokens == again.stats.prompt_tokens - 1
    assert again.ids == first.ids
    fresh = gather.run([replace(chat(QUESTIONS[1], max_tokens=4), reuse_cache=False)])[0]
    assert fresh.stats.cached_tokens == 0


def test_cancel_ends_one_request_and_not_the_others(gather: Gatherer, host: SlotHost) -> None:
    long = [chat(q, max_tokens=120, ignore_eos=True) for q in QUESTIONS[:3]]
    cancel_after = 5

    cancelled_at: list[int] = []

    def cancel_early(request_id: int, reply: Reply) -> None:
        if len(reply.ids) >= cancel_after and not cancelled_at:
            cancelled_at.append(len(reply.ids))
            host.cancel(request_id)

    ids = [gather.submit(long[0], on_delta=cancel_early),
           *(gather.submit(request) for request in long[1:])]
    queued = [gather.submit(chat(q, max_tokens=120, ignore_eos=True)) for q in QUESTIONS[:2]]
    host.cancel(queued[1])  # still waiting: the fourth slot is taken by queued[0]
    replies = gather.wait([*ids, *queued])
    cancelled, others, waiting = replies[0], replies[1:3], replies[3:]
    assert cancelled.stats.finish_reason == "cancelled"
    assert cancelled_at[0] <= cancelled.stats.generated_tokens <= cancelled_at[0] + 4
    for reply in (*others, waiting[0]):
        assert reply.stats.finish_reason == "length"
        assert reply.stats.generated_tokens == len(reply.ids) == 120
    assert waiting[1].stats.finish_reason == "cancelled" and not waiting[1].ids


def test_sampling_with_a_seed_is_reproducible(gather: Gatherer) -> None:
    def sampled(seed: int) -> list[int]:
        request = chat(QUESTIONS[0], max_tokens=30, temperature=1.2, top_k=0, top_p=1.0,
                       min_p=0.0, seed=seed)
        return gather.run([request])[0].ids

    first = sampled(1234)
    assert sampled(1234) == first
    assert any(sampled(seed) != first for seed in (1, 2, 3))


def test_json_schema_output_parses_and_validates(gather: Gatherer) -> None:
    flag_schema = json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}},
                              "required": ["ok"], "additionalProperties": False})
    person, flag, any_object = gather.run([
        chat("Describe a person with a name, an age and pets, as JSON.", max_tokens=120,
             json_schema=PERSON_SCHEMA),
        chat("Is the sky blue?", max_tokens=40, json_schema=flag_schema),
        chat("Give me some JSON.", max_tokens=40, json_schema='{"type": "object"}'),
    ])
    value = json.loads(person.text)
    assert set(value) == {"name", "age", "pets"}
    assert isinstance(value["name"], str)
    assert isinstance(value["age"], int) and not isinstance(value["age"], bool)
    assert isinstance(value["pets"], list) and len(value["pets"]) <= 2
    assert all(isinstance(pet, str) for pet in value["pets"])
    assert person.stats.finish_reason == "stop"
    assert isinstance(json.loads(flag.text)["ok"], bool) and flag.stats.finish_reason == "stop"
    # a small model may go on listing things until max_tokens; what it wrote is JSON so far
    assert any_object.text.lstrip().startswith("{")
    if any_object.stats.finish_reason == "stop":
        assert isinstance(json.loads(any_object.text), dict)


def test_a_schema_that_cannot_be_used_fails_only_its_request(gather: Gatherer) -> None:
    bad, good = gather.run([chat("Hi", json_schema='{"type": "no-such-type"}'),
                            chat(QUESTIONS[1], max_tokens=6)])
    assert isinstance(bad.end, EngineError) and not bad.ids
    assert "JSON schema" in str(bad.end) and "no-such-type" in str(bad.end)
    assert good.stats.generated_tokens == 6
    not_json = gather.run([chat("Hi", json_schema="{not json")])[0]
    assert isinstance(not_json.end, EngineError)


def test_logprobs_are_log_probabilities_with_sorted_alternatives(gather: Gatherer) -> None:
    reply = gather.run([chat(QUESTIONS[3], max_tokens=10, logprobs=True, top_logprobs=3)])[0]
    entries = [entry for delta in reply.deltas for entry in delta.logprobs]
    assert len(entries) == len(reply.ids) == 10
    for entry in entries:
        assert entry.logprob <= 0.0
        values = [value for _, value in entry.top]
        assert len(values) == 3 and values == sorted(values, reverse=True)
        assert all(value <= 0.0 for value in values)
        assert sum(math.exp(value) for value in values) <= 1.0 + 1e-6
        # greedy: the chosen token is the most likely one
        assert entry.top[0] == (entry.text, pytest.approx(entry.logprob))
    plain = gather.run([chat(QUESTIONS[3], max_tokens=3)])[0]
    assert all(not delta.logprobs for delta in plain.deltas)


def test_stop_strings_end_the_reply_before_them(gather: Gatherer) -> None:
    full = gather.run([chat(QUESTIONS[0], max_tokens=40)])[0]
    words = full.text.split()
    assert len(words) > 6
    stop = " " + words[5]
    cut = full.text.index(stop)
    stopped = gather.run([chat(QUESTIONS[0], max_tokens=40, stop=(stop, "never-there"))])[0]
    assert stopped.text == full.text[:cut]
    assert stopped.stats.finish_reason == "stop"


def test_penalties_change_a_greedy_reply(gather: Gatherer) -> None:
    plain, penalised = gather.run([
        chat(QUESTIONS[0], max_tokens=40, ignore_eos=True),
        chat(QUESTIONS[0], max_tokens=40, ignore_eos=True, presence_penalty=1.5,
             frequency_penalty=1.5),
    ])
    assert penalised.ids != plain.ids
    assert len(set(penalised.ids)) >= len(set(plain.ids))


def test_raw_messages_and_tools_render_through_the_template(gather: Gatherer,
                                                           host: SlotHost) -> None:
    assert "<|im_start|>" in host.chat_template()
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    raw = GenerationRequest(
        raw_messages=({"role": "user", "content": QUESTIONS[1]},),
        tools=(tool,), sampling=SamplingParams.greedy(max_tokens=4))
    plain = gather.run([raw, chat(QUESTIONS[1], max_tokens=4)])
    assert plain[0].stats.generated_tokens == 4
    assert plain[0].stats.prompt_tokens >= plain[1].stats.prompt_tokens


def test_prompts_longer_than_a_batch_are_decoded_in_chunks(gather: Gatherer,
                                                           host: SlotHost) -> None:
    text = " ".join(["word"] * 700)
    n_tokens = len(host.tokenize(text))
    assert 512 < n_tokens < N_CTX  # more than one n_batch (512) of prompt
    long, short = gather.run([GenerationRequest(prompt=text, sampling=SamplingParams.greedy(3)),
                              chat(QUESTIONS[1], max_tokens=3)])
    assert long.stats.prompt_tokens >= n_tokens and long.stats.generated_tokens == 3
    assert short.stats.generated_tokens == 3


def test_a_prompt_longer_than_a_slot_is_an_error(gather: Gatherer, host: SlotHost) -> None:
    words = " ".join(["word"] * (N_CTX + 50))
    assert len(host.tokenize(words)) > N_CTX
    reply = gather.run([GenerationRequest(prompt=words, sampling=SamplingParams.greedy(4))])[0]
    assert isinstance(reply.end, EngineError) and "too long" in str(reply.end)


def test_embeddings_are_normalised_vectors(host: SlotHost) -> None:
    vectors = host.embed(["I like cats.", "I like cats.", "The quarterly tax report is due."])
    assert len(vectors) == 3 and len(vectors[0]) == 576  # SmolLM2-135M's embedding size
    for vector in vectors:
        assert math.fsum(x * x for x in vector) == pytest.approx(1.0, abs=1e-5)
    assert vectors[0] == pytest.approx(vectors[1], abs=1e-5)
    assert vectors[0] != pytest.approx(vectors[2], abs=1e-3)
    with pytest.raises(EngineError):
        host.embed([""])


def test_a_killed_host_fails_every_pending_request(default_model: Path) -> None:
    host = SlotHost(parallel=2)
    try:
        host.load(LoadConfig(model_path=str(default_model), n_ctx=512, n_threads=2))
        gather = Gatherer(host)
        pid = host.pid
        assert pid is not None
        killed: list[bool] = []

        def kill_once(_request_id: int, _reply: Reply) -> None:
            if not killed:
                killed.append(True)
                os.kill(pid, signal.SIGKILL)

        ids = [gather.submit(chat(QUESTIONS[0], max_tokens=400, ignore_eos=True),
                             on_delta=kill_once)]
        ids += [gather.submit(chat(q, max_tokens=400, ignore_eos=True)) for q in QUESTIONS[1:]]
        for reply in gather.wait(ids):
            assert isinstance(reply.end, EngineCrashed)
            assert "SIGKILL" in str(reply.end)
        assert not host.is_alive()
        with pytest.raises(EngineCrashed):
            host.submit(chat("Hi"), lambda _item: None)
        info = host.load(LoadConfig(model_path=str(default_model), n_ctx=512, n_threads=2))
        assert info.n_ctx == 512 and host.pid != pid
        after = Gatherer(host).run([chat(QUESTIONS[1], max_tokens=3)])[0]
        assert isinstance(after.end, Finished) and after.stats.generated_tokens == 3
    finally:
        host.shutdown()
