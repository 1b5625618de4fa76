"""Turning a request into prompt token ids, the same way for every engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from macllm_app.core.engines.prompt.context_policy import fit_to_context, prompt_budget
from macllm_app.core.errors import EngineError
from macllm_app.core.types import GenerationRequest, Message

ChatEncoder = Callable[[Sequence[Message]], list[int]]
TextEncoder = Callable[[str], list[int]]


def common_prefix(cached: Sequence[int], tokens: Sequence[int]) -> int:
    """How many leading tokens two sequences share."""
    limit = min(len(cached), len(tokens))
    prefix = 0
    while prefix < limit and cached[prefix] == tokens[prefix]:
        prefix += 1
    return prefix


def request_tokens(request: GenerationRequest, n_ctx: int, n_vocab: int,
                   encode_chat: ChatEncoder, encode_prompt: TextEncoder) -> tuple[list[int], int]:
    """Prompt tokens for `request`, and how many old messages were dropped to fit `n_ctx`."""
    budget = prompt_budget(n_ctx, request.sampling.max_tokens)
    if request.prompt_tokens is not None or request.prompt is not None:
        if request.prompt_tokens is not None:
            bad = next((t for t in request.prompt_tokens if not 0 <= t < n_vocab), None)
            if bad is not None:
                raise EngineError(f"Token id {bad} is outside the vocabulary (0..{n_vocab - 1}).")
            tokens = list(request.prompt_tokens)
        else:
            assert request.prompt is not None
            tokens = encode_prompt(request.prompt)
        if len(tokens) > budget:
            raise EngineError(f"The message is too long for the context window "
                              f"({len(tokens)} tokens > {budget}).")
        return tokens, 0
    if not request.messages:
        raise EngineError("Nothing to answer: the request has no messages and no prompt.")
    memo: dict[tuple[Message, ...], list[int]] = {}

    def count(messages: Sequence[Message]) -> int:
        key = tuple(messages)
        memo[key] = encode_chat(key)
        return len(memo[key])

    fitted = fit_to_context(request.messages, count, budget)
    tokens = memo.get(fitted.messages) or encode_chat(fitted.messages)
    return tokens, fitted.dropped
