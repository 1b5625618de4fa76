"""The server's pure parts: tool-call parsing, request schemas and their 400s, the Host and
Origin rules, API keys in the keychain, prompt building for tools."""

from __future__ import annotations

import json
from collections.abc import Iterator

import keyring
import pytest
from keyring.backends import fail
from pydantic import ValidationError

from macllm_app.core.errors import UserError
from macllm_app.core.server import config as server_config
from macllm_app.core.server.config import ServerConfig, effective_api_key, is_loopback
from macllm_app.core.server.errors import ApiError, from_validation
from macllm_app.core.server.prompting import chat_generation, reply_tokens
from macllm_app.core.server.schemas_openai import ChatCompletionRequest, CompletionRequest
from macllm_app.core.server.security import Guard, split_host
from macllm_app.core.server.tool_calls import parse_tool_calls
from tests.unit.test_library_token import MemoryKeyring

NAMES = ("get_weather", "add")


@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]',
    "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}",
    '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
    '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    '{"tool_call": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}',
    '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
])
def test_tool_calls_in_every_format(text: str) -> None:
    content, calls = parse_tool_calls(text, NAMES)
    assert content == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})]
    assert calls[0].id.startswith("call_")


def test_several_hermes_calls_and_text_before_them() -> None:
    text = ('Let me check.\n<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}'
            '</tool_call>\n<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>')
    content, calls = parse_tool_calls(text, NAMES)
    assert content == "Let me check."
    assert [c.name for c in calls] == ["add", "get_weather"]


@pytest.mark.parametrize("text", [
    "The weather is fine.",
    '{"name": "rm_rf", "arguments": {}}',  # not an offered tool
    '{"name": "get_weather", "arguments": {"city": "Paris"}} and more text',
    '<tool_call>{"name": "get_weather", "arguments": </tool_call>',
    '{"answer": 42}',
])
def test_text_that_is_not_a_call_stays_text(text: str) -> None:
    assert parse_tool_calls(text, NAMES) == (text, [])


def _error(body: dict[str, object]) -> ApiError:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(body)
    return from_validation(caught.value)


def test_validation_errors_name_the_field() -> None:
    hello = [{"role": "user", "content": "hi"}]
    assert _error({"messages": hello, "n": 3}).param == "n"
    assert "1 choice" in _error({"messages": hello, "n": 3}).message
    assert _error({"messages": [{"role": "x", "content": "hi"}]}).param == "messages[0].role"
    assert _error({"messages": hello, "temperature": -1}).param == "temperature"
    assert _error({"messages": hello, "logit_bias": {"50256": -100}}).param == "logit_bias"
    assert _error({"messages": hello, "tool_choice": "sometimes"}).param == "tool_choice"
    error = _error({"messages": []})
    assert error.status == 400 and error.param == "messages"
    body = error.body()["error"]
    assert set(body) == {"message", "type", "param", "code"}


def test_unknown_fields_are_ignored_and_limits_read() -> None:
    request = ChatCompletionRequest.model_validate({
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]}],
        "user": "u1", "metadata": {"a": "b"}, "store": False, "n": 1,
        "max_completion_tokens": 7, "stop": "END"})
    assert request.reply_limit() == 7 and request.stops() == ("END",)
    assert request.messages[0].text() == "be brief"
    assert CompletionRequest.model_validate({"prompt": "x"}).max_tokens == 16
    with pytest.raises(ApiError) as caught:
        reply_tokens(5000, 4096)
    assert caught.value.param == "max_tokens"
    assert reply_tokens(None, 4096) == 4096


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object",
                                          "properties": {"city": {"type": "string"}}}}}]
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>\n' }}{% endfor %}")
WITH_TOOLS = CHATML + "{% if tools %}{{ tools | tojson }}{% endif %}{# tool_calls #}"


def test_named_tool_choice_constrains_the_reply_to_that_call() -> None:
    request = ChatCompletionRequest.model_validate({
        "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    generation, plan = chat_generation(request, CHATML, 64)
    schema = json.loads(generation.sampling.json_schema or "")
    assert schema["properties"]["name"] == {"const": "get_weather"}
    assert plan.parse and plan.names == ("get_weather",)
    # a template that knows no tools gets them described in a system message
    assert generation.raw_messages[0]["role"] == "system"
    assert "get_weather" in generation.raw_messages[0]["content"]
    assert generation.tools == ()


def test_templates_with_tools_get_them_natively_and_tool_turns_as_sent() -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}]
    request = ChatCompletionRequest.model_validate({"messages": messages, "tools": TOOLS})
    native, _ = chat_generation(request, WITH_TOOLS, 64)
    assert native.tools[0]["function"]["name"] == "get_weather"
    call = native.raw_messages[1]["tool_calls"][0]
    assert call["function"]["arguments"] == {"city": "Oslo"}
    assert native.raw_messages[2]["role"] == "tool"
    generic, _ = chat_generation(request, CHATML, 64)
    assert json.loads(generic.raw_messages[2]["content"])["name"] == "get_weather"
    assert generic.raw_messages[3]["role"] == "user"
    assert "Sunny" in generic.raw_messages[3]["content"]
    with pytest.raises(ApiError) as caught:
        chat_generation(ChatCompletionRequest.model_validate(
            {"messages": messages, "tools": TOOLS,
             "tool_choice": {"type": "function", "function": {"name": "nope"}}}), CHATML, 8)
    assert caught.value.param == "tool_choice"


def test_host_header_rules() -> None:
    assert split_host("localhost:8080") == ("localhost", 8080)
    assert split_host("[::1]:8080") == ("[::1]", 8080)
    assert split_host("evil.example") == ("evil.example", None)
    guard = Guard(ServerConfig(port=8080), None)
    assert guard.host_ok("127.0.0.1:8080") and guard.host_ok("LOCALHOST:8080")
    assert guard.host_ok("[::1]:8080")
    assert not guard.host_ok("evil.example:8080")  # DNS rebinding
    assert not guard.host_ok("localhost:9999") and not guard.host_ok(None)
    assert not guard.host_ok("localhost:8080@evil")
    allowed = Guard(ServerConfig(allowed_origins=("http://App.example:3000/",)), None)
    assert allowed.origin_allowed("http://app.example:3000")
    assert not allowed.origin_allowed("http://app.example:3001")


def test_loopback_and_keys(restore_keyring: None) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    keyring.set_keyring(fail.Keyring())
    assert effective_api_key(ServerConfig()) is None
    with pytest.raises(UserError, match="needs an API key"):
        effective_api_key(ServerConfig(host="0.0.0.0"))
    with pytest.raises(UserError, match="No secure keychain"):
        server_config.store_api_key("sk-1")
    assert effective_api_key(ServerConfig(host="0.0.0.0", api_key="sk-given")) == "sk-given"
    keyring.set_keyring(MemoryKeyring())
    key = server_config.store_api_key()
    assert key.startswith("sk-macllm-")
    assert effective_api_key(ServerConfig(host="0.0.0.0")) == key
    assert effective_api_key(ServerConfig(host="0.0.0.0", use_keychain=False,
                                          api_key="sk-x")) == "sk-x"


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)
