"""Example calls to the running server, ready to paste: curl, the openai Python client,
and Ollama's API. Plain text (no Qt), made for the address, model and key in use."""

from __future__ import annotations

import json

KINDS = ("curl", "Python (openai)", "Ollama")
PROMPT = "Say hello in five words."


def _auth_header(key: str | None) -> str:
    return f' \\\n  -H "Authorization: Bearer {key}"' if key else ""


def curl_example(url: str, model: str, key: str | None) -> str:
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": PROMPT}]})
    return (f"curl {url}/v1/chat/completions{_auth_header(key)} \\\n"
            f'  -H "Content-Type: application/json" \\\n'
            f"  -d '{body}'\n")


def openai_example(url: str, model: str, key: str | None) -> str:
    return (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{url}/v1", api_key={json.dumps(key or "none")})\n'
        "stream = client.chat.completions.create(\n"
        f"    model={json.dumps(model)},\n"
        f'    messages=[{{"role": "user", "content": {json.dumps(PROMPT)}}}],\n'
        "    stream=True,\n"
        ")\n"
        "for chunk in stream:\n"
        '    print(chunk.choices[0].delta.content or "", end="", flush=True)\n'
    )


def ollama_example(url: str, model: str, key: str | None) -> str:
    body = json.dumps({"model": model,
                       "messages": [{"role": "user", "content": PROMPT}]})
    return (f"# Ollama's API (streams one JSON object a line); OLLAMA_HOST={url} for its tools\n"
            f"curl {url}/api/chat{_auth_header(key)} \\\n"
            f"  -d '{body}'\n")


def example(kind: str, url: str, model: str, key: str | None) -> str:
    makers = {"curl": curl_example, "Python (openai)": openai_example, "Ollama": ollama_example}
    return makers[kind](url.rstrip("/"), model, key)
