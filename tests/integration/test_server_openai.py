"""The OpenAI API of `LocalServer`, through the real `openai` client and plain HTTP, on a
real server on 127.0.0.1 serving the real default model (one server for the module)."""

from __future__ import annotations

import json
import math
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.server_thread import ServerThread

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

HELLO = [{"role": "user", "content": "Say hello to Ada in one short sentence."}]


@pytest.fixture(scope="module")
def served() -> Iterator[ServerThread]:
    server = ServerThread(max_tokens_cap=256).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(served: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


def _post(served: ServerThread, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(served.url + path, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_models_list_has_the_default_model_marked_loaded(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert "default" in models
    assert models["default"].model_extra is not None
    assert models["default"].model_extra["loaded"] is True
    assert client.models.retrieve("default").id == "default"


def test_chat_completion_with_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="default", messages=HELLO, max_tokens=16,
                                           temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert 0 < reply.usage.completion_tokens <= 16
    assert reply.usage.prompt_tokens > 5
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_chat_with_include_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="default", messages=HELLO, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length")
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert 0 < chunks[-1].usage.completion_tokens <= 12


def test_stop_string_ends_the_reply_before_it(client: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": "Write two sentences about the sea."}]
    full = client.chat.completions.create(model="default", messages=ask, max_tokens=30,
                                          temperature=0).choices[0].message.content or ""
    words = full.split()
    assert len(words) > 6
    stop = " " + words[4]
    cut = client.chat.completions.create(model="default", messages=ask, max_tokens=30,
                                         temperature=0, stop=[stop]).choices[0]
    assert cut.finish_reason == "stop"
    assert stop not in (cut.message.content or "")
    assert full.startswith(cut.message.content or "")


def test_same_seed_same_reply_at_temperature_above_zero(client: openai.OpenAI) -> None:
    def reply(seed: int) -> str:
        return client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Invent a pet's name."}],
            max_tokens=12, temperature=1.0, seed=seed).choices[0].message.content or ""

    first = reply(1234)
    assert first
    assert reply(1234) == first


def test_json_schema_output_parses_and_validates(client: openai.OpenAI) -> None:
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"name": {"type": "string", "maxLength": 20},
                             "age": {"type": "integer", "minimum": 0, "maximum": 150}},
              "required": ["name", "age"]}
    reply = client.chat.completions.create(
        model="default", max_tokens=60, temperature=0,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": schema}})
    value = json.loads(reply.choices[0].message.content or "")
    assert set(value) == {"name", "age"}
    assert isinstance(value["name"], str) and len(value["name"]) <= 20
    assert isinstance(value["age"], int) and 0 <= value["age"] <= 150


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"city": {"type": "string", "maxLength": 30}},
                   "required": ["city"]}}}


def test_tool_call_round_trip(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(
        model="default", messages=messages, tools=[WEATHER_TOOL], max_tokens=40,
        temperature=0, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.id
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert isinstance(arguments["city"], str)

    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}]
    answer = client.chat.completions.create(model="default", messages=messages,
                                            tools=[WEATHER_TOOL], tool_choice="none",
                                            max_tokens=20, temperature=0)
    assert answer.choices[0].message.content
    assert not answer.choices[0].message.tool_calls


def test_streamed_forced_tool_call(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL], tool_choice="required", max_tokens=40, temperature=0,
        stream=True))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [tc.function.name for tc in calls if tc.function] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_text_completion_streamed_and_not(client: openai.OpenAI) -> None:
    done = client.completions.create(model="default", prompt="Once upon a time",
                                     max_tokens=8, temperature=0)
    assert done.choices[0].text
    assert done.usage is not None and 0 < done.usage.completion_tokens <= 8
    pieces = list(client.completions.create(model="default", prompt="Once upon a time",
                                            max_tokens=8, temperature=0, stream=True))
    assert "".join(p.choices[0].text for p in pieces if p.choices) == done.choices[0].text


def test_embeddings_shape(client: openai.OpenAI, served: ServerThread) -> None:
    result = client.embeddings.create(model="default", input=["a cat", "a dog", "a car"])
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert len({len(v) for v in vectors}) == 1 and len(vectors[0]) >= 64
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-3)
    status, body = _post(served, "/v1/embeddings", {"input": "one text",
                                                    "encoding_format": "float"})
    assert status == 200 and len(body["data"][0]["embedding"]) == len(vectors[0])


def test_logprobs_and_top_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="default", messages=HELLO, max_tokens=5,
                                           temperature=0, logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None
    assert reply.usage is not None and len(content) == reply.usage.completion_tokens
    for token in content:
        assert token.logprob <= 0.0
        assert len(token.top_logprobs) == 3
        assert token.top_logprobs[0].logprob >= token.top_logprobs[-1].logprob
    # greedy: the chosen token is the likeliest one
    assert content[0].logprob == pytest.approx(content[0].top_logprobs[0].logprob, abs=1e-4)


def test_n_above_one_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="default", messages=HELLO, n=2)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "n" and "1 choice" in error["message"]


def test_errors_are_shaped_like_openai(served: ServerThread, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "model_not_found"
    status, body = _post(served, "/v1/chat/completions",
                         {"messages": HELLO, "temperature": "hot"})
    assert status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == "temperature"
    assert body["error"]["type"] == "invalid_request_error"
    status, body = _post(served, "/v1/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = _post(served, "/v1/nothing-here", {})
    assert status == 404 and "error" in body
    bad_schema = {"type": "json_schema",
                  "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}
    for stream in (False, True):  # an engine's refusal before any text is a plain 400
        status, body = _post(served, "/v1/chat/completions",
                             {"messages": HELLO, "response_format": bad_schema,
                              "stream": stream})
        assert status == 400 and body["error"]["code"] == "engine_error", body
    # a path is never a model: it does not name a library entry
    status, body = _post(served, "/v1/chat/completions",
                         {"model": "../../../etc/passwd", "messages": HELLO})
    assert status == 404 and body["error"]["code"] == "model_not_found"


def test_switching_between_two_library_models(served: ServerThread, client: openai.OpenAI,
                                              default_model: Path, tmp_path: Path) -> None:
    from macllm_app.core.library.importer import import_model

    copy = tmp_path / "second-smol.gguf"
    shutil.copyfile(default_model, copy)
    second = import_model(copy).id

    def ask(model: str) -> str:
        return client.chat.completions.create(model=model, messages=HELLO, max_tokens=4,
                                              temperature=0).model

    assert ask(second) == second
    assert served.server.stats.model == second
    loaded = {m.id: m.model_extra["loaded"] for m in client.models.list().data
              if m.model_extra is not None}
    assert loaded[second] is True and loaded["default"] is False
    with ThreadPoolExecutor(4) as pool:  # requests for both models at once: each waits its turn
        answered = list(pool.map(ask, ["default", second, "default", second]))
    assert answered == ["default", second, "default", second]
    assert ask("default") == "default"
