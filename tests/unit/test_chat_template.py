"""Chat templates render in a sandbox; anything unsafe or broken is a TemplateError."""

from __future__ import annotations

import pytest

from macllm_app.core.engines.prompt.template import CHATML_TEMPLATE, ChatTemplate
from macllm_app.core.errors import TemplateError
from macllm_app.core.types import Message

CONVERSATION = (
    Message("system", "Be brief."),
    Message("user", "Hi"),
    Message("assistant", "Hello!"),
    Message("user", "How are you?"),
)

HOSTILE_TEMPLATES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__['os'].system('id') }}",
    "{{ messages.__class__.__base__.__subclasses__() }}",
    "{% set x = messages.append({'role': 'user', 'content': 'x'}) %}{{ x }}",
    "{{ namespace.__init__.__globals__.__builtins__['__import__']('os').getcwd() }}",
    "{{ (lipsum|attr('__globals__'))['os'].popen('id').read() }}",
]


def test_chatml_fallback_when_no_template() -> None:
    template = ChatTemplate(None)
    assert template.is_fallback
    assert template.source == CHATML_TEMPLATE
    text = template.render(CONVERSATION)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_renders_with_tokens_and_helpers() -> None:
    source = (
        "{{ bos_token }}{% for m in messages %}\n"
        "[{{ m['role'] }}]{{ m['content'] }}{{ eos_token }}\n"
        "{% endfor %}\n"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
        "{{ strftime_now('%Y')|length }}"
    )
    text = ChatTemplate(source, bos_token="<s>", eos_token="</s>").render(CONVERSATION[1:2])
    # trim_blocks/lstrip_blocks remove the newlines after block tags.
    assert text == "<s>[user]Hi</s>\n[assistant]4"


def test_loop_controls_are_available() -> None:
    source = ("{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
              "{{ m.content }}{% endfor %}")
    assert ChatTemplate(source).render(CONVERSATION) == "Be brief."


@pytest.mark.parametrize("source", HOSTILE_TEMPLATES)
def test_hostile_template_is_refused(source: str) -> None:
    template = ChatTemplate(source)
    with pytest.raises(TemplateError) as info:
        template.render(CONVERSATION)
    message = str(info.value)
    assert "\n" not in message
    assert "uid=" not in message
    assert message.startswith("The model's chat template ")


def test_attribute_walk_is_unsafe_error() -> None:
    with pytest.raises(TemplateError, match=r"^The model's chat template is unsafe: "):
        ChatTemplate("{{ ''.__class__.__mro__[1].__subclasses__() }}").render(CONVERSATION)
    with pytest.raises(TemplateError, match=r"^The model's chat template is unsafe: "):
        ChatTemplate("{{ cycler.__init__.__globals__.os.popen('id').read() }}").render(
            CONVERSATION)


def test_syntax_error() -> None:
    with pytest.raises(TemplateError, match="syntax error"):
        ChatTemplate("{% for m in messages %}{{ m.content }")


def test_raise_exception_reaches_the_user() -> None:
    template = ChatTemplate(
        "{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
    )
    with pytest.raises(TemplateError, match="System role not supported"):
        template.render(CONVERSATION)


def test_runtime_failure_is_one_line() -> None:
    with pytest.raises(TemplateError, match="failed to render") as info:
        ChatTemplate("{{ messages[99]['content'] + 1 }}").render(CONVERSATION)
    assert "\n" not in str(info.value)


def test_generation_tag_renders_its_body() -> None:
    source = ("{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
              "{{ m.content }}{% endgeneration %}{% else %}[{{ m.content }}]{% endif %}"
              "{% endfor %}")
    assert ChatTemplate(source).render(CONVERSATION[1:3]) == "[Hi]Hello!"


def test_tojson_keeps_key_order_and_html() -> None:
    tools = [{"name": "f", "description": "a < b & c > d — é", "a": 1}]
    template = ChatTemplate("{{ tools | tojson }}|{{ tools[0] | tojson(indent=1) }}")
    text = template.render(CONVERSATION, tools=tools)
    assert text.startswith('[{"name": "f", "description": "a < b & c > d — é", "a": 1}]|')
    assert '\n "name": "f",' in text


def test_tools_and_documents_default_to_none() -> None:
    source = "{{ tools is none }} {{ documents is none }} {{ tools is defined }}"
    assert ChatTemplate(source).render(CONVERSATION) == "True True True"


def test_raw_message_dicts_drop_none_values() -> None:
    source = ("{% for m in messages %}{{ m.role }}:{{ m.content is defined }}"
              "{% if m.tool_calls %}:{{ m.tool_calls[0].function.name }}{% endif %};"
              "{% endfor %}")
    messages = [{"role": "user", "content": "Hi"},
                {"role": "assistant", "content": None,
                 "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}]
    assert ChatTemplate(source).render(messages) == "user:True;assistant:False:f;"


def test_namespace_refuses_underscore_names() -> None:
    with pytest.raises(TemplateError, match=r"^The model's chat template is unsafe: "):
        ChatTemplate("{% set ns = namespace(_x=1) %}{{ ns._x }}").render(CONVERSATION)
    with pytest.raises(TemplateError, match=r"^The model's chat template is unsafe: "):
        ChatTemplate("{% set ns = namespace() %}{% set ns._x = 1 %}").render(CONVERSATION)
