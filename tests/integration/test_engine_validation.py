"""A corrupt GGUF is refused by the Python validator inside the host, before llama.cpp."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from macllm_app.core.engines.host import EngineHost
from macllm_app.core.errors import EngineError
from macllm_app.core.types import LoadConfig

pytestmark = pytest.mark.llamacpp


def _header_claiming_huge_counts(path: Path) -> None:
    # magic, version 3, 1 tensor, 2**40 metadata entries: a native reader would try to allocate
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 2**40) + b"\0" * 64)


def test_corrupt_gguf_is_refused_and_the_host_survives(tmp_path: Path,
                                                       default_model: Path) -> None:
    bad = tmp_path / "corrupt.gguf"
    _header_claiming_huge_counts(bad)
    with EngineHost() as host:
        with pytest.raises(EngineError, match=r"corrupt\.gguf"):
            host.load(LoadConfig(model_path=str(bad), n_ctx=512, n_threads=2))
        assert host.is_alive()
        info = host.load(LoadConfig(model_path=str(default_model), n_ctx=512, n_threads=2))
        assert info.architecture == "llama"


def test_token_prompt_matches_text_prompt_and_bad_ids_are_refused(llama_host: EngineHost) -> None:
    from macllm_app.core.types import (
        Finished,
        GenerationRequest,
        SamplingParams,
        TextDelta,
    )

    def reply(request: GenerationRequest) -> tuple[str, int]:
        text, prompt_tokens = "", 0
        for event in llama_host.stream(request):
            if isinstance(event, TextDelta):
                text += event.text
            elif isinstance(event, Finished):
                prompt_tokens = event.stats.prompt_tokens
        return text, prompt_tokens

    prompt = "<|im_start|>user\nName three fruits.<|im_end|>\n<|im_start|>assistant\n"
    greedy = SamplingParams.greedy(max_tokens=12)
    ids = llama_host.tokenize(prompt)
    assert len(ids) == llama_host.count_tokens(prompt) > 5
    from_text = reply(GenerationRequest(prompt=prompt, sampling=greedy, reuse_cache=False))
    from_ids = reply(GenerationRequest(prompt_tokens=tuple(ids), sampling=greedy,
                                       reuse_cache=False))
    assert from_ids == from_text
    assert from_text[0].strip()
    with pytest.raises(EngineError, match="outside the vocabulary"):
        reply(GenerationRequest(prompt_tokens=(1, 10**9), sampling=greedy))
