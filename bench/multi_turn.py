"""Turn 10 of a conversation with ~1,500 tokens of history: TTFT with the prompt
cache reused vs dropped. Target: reuse / dropped <= 0.2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, verdict

from macllm_app.core.default_model import default_model_path
from macllm_app.core.engines.host import EngineHost
from macllm_app.core.types import (
    Finished,
    GenerationRequest,
    GenerationStats,
    LoadConfig,
    Message,
    SamplingParams,
    TextDelta,
)

TOPICS = ["rivers", "volcanoes", "bees", "glaciers", "comets", "forests", "deserts", "tides",
          "clouds", "caves"]


def run_turn(host: EngineHost, messages: list[Message], reuse: bool,
             max_tokens: int) -> tuple[str, GenerationStats]:
    request = GenerationRequest(messages=tuple(messages), reuse_cache=reuse,
                                sampling=SamplingParams.greedy(max_tokens=max_tokens))
    text: list[str] = []
    stats = GenerationStats()
    for event in host.stream(request):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, Finished):
            stats = event.stats
    return "".join(text), stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    host = EngineHost()
    host.load(LoadConfig(model_path=str(default_model_path()), n_ctx=4096,
                         n_threads=args.threads))
    messages = [Message("system", "You are a helpful assistant.")]
    for topic in TOPICS[:9]:
        messages.append(Message("user", f"Tell me about {topic} in a long paragraph."))
        reply, _ = run_turn(host, messages, reuse=True, max_tokens=150)
        messages.append(Message("assistant", reply))
    history = host.count_tokens("\n".join(m.content for m in messages))
    turn_9 = messages[:-1]
    messages.append(Message("user", f"And now tell me about {TOPICS[9]}."))

    with_reuse: list[float] = []
    without: list[float] = []
    cached = 0
    for _ in range(args.runs):
        _, cold = run_turn(host, messages, reuse=False, max_tokens=4)
        without.append(cold.ttft_s)
        run_turn(host, turn_9, reuse=True, max_tokens=150)  # the cache as turn 9 left it
        _, warm = run_turn(host, messages, reuse=True, max_tokens=4)
        with_reuse.append(warm.ttft_s)
        cached = warm.cached_tokens
    host.shutdown()
    warm_ttft, cold_ttft = median(with_reuse), median(without)
    print(f"history ~{history} tokens; turn 10 prompt reused {cached} cached tokens")
    print(f"  TTFT with cache reuse: {warm_ttft * 1000:7.1f} ms")
    print(f"  TTFT cache dropped:    {cold_ttft * 1000:7.1f} ms")
    print(verdict("reuse / dropped", warm_ttft / cold_ttft, 0.2, higher_is_better=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
