"""The model pool's rules with a fake slot host (no model): admission and 503, one model
at a time with requests for another waiting their turn in order, idle unload, crashes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from macllm_app.core.errors import EngineCrashed
from macllm_app.core.server.config import ServerConfig
from macllm_app.core.server.errors import ApiError
from macllm_app.core.server.model_pool import ModelPool
from macllm_app.core.server.models import ServedModel
from macllm_app.core.types import (
    Event,
    Finished,
    GenerationRequest,
    GenerationStats,
    LoadConfig,
    ModelInfo,
    TextDelta,
)


class FakeHost:
    """Answers each request with one delta and Finished, from a thread, when released."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.model: ModelInfo | None = None
        self.alive = True
        self.pending: dict[int, Callable[[Event | Exception], None]] = {}
        self.next_id = 0

    def start(self) -> None:
        self.log.append("start")

    def is_alive(self) -> bool:
        return self.alive

    def shutdown(self, timeout: float = 5.0) -> None:
        self.log.append("shutdown")

    def load(self, config: LoadConfig) -> ModelInfo:
        self.log.append(f"load {config.model_path}")
        self.model = ModelInfo(config.model_path, "m", "llama.cpp", "llama", 512, 512, 1, 1,
                               True, 0, "cpu")
        return self.model

    def unload(self) -> None:
        self.log.append("unload")
        self.model = None

    def submit(self, request: GenerationRequest,
               on_event: Callable[[Event | Exception], None]) -> int:
        if not self.alive:
            raise EngineCrashed("gone")
        self.next_id += 1
        self.pending[self.next_id] = on_event
        return self.next_id

    def finish(self, request_id: int, reason: str = "stop") -> None:
        on_event = self.pending.pop(request_id)

        def send() -> None:
            on_event(TextDelta("x", (1,)))
            on_event(Finished(GenerationStats(finish_reason=reason)))  # type: ignore[arg-type]

        threading.Thread(target=send).start()

    def cancel(self, request_id: int) -> None:
        self.log.append(f"cancel {request_id}")
        self.finish(request_id, "cancelled")

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0] for _ in texts]

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text)

    def chat_template(self) -> str:
        return ""


class FakeDirectory:
    def resolve(self, ref: str | None) -> ServedModel:
        if ref not in ("a", "b"):
            raise ApiError(404, "no such model", code="model_not_found")
        return ServedModel(ref, ref, f"/models/{ref}.gguf", "llama.cpp", {})


def _pool(log: list[str], hosts: list[FakeHost], **config: Any) -> ModelPool:
    def factory(_parallel: int) -> FakeHost:
        hosts.append(FakeHost(log))
        return hosts[-1]

    settings = {"parallel": 1, "queue_size": 2, "idle_unload_s": 0, **config}
    return ModelPool(ServerConfig(**settings), factory, FakeDirectory())  # type: ignore[arg-type]


async def _generate(pool: ModelPool, ref: str, order: list[str]) -> None:
    async with pool.lease(ref) as lease:
        order.append(ref)
        generation = lease.generate(GenerationRequest(prompt="hi"))
        await generation.collect()


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


def test_admission_and_model_turns_in_arrival_order() -> None:
    async def scenario() -> None:
        log: list[str] = []
        hosts: list[FakeHost] = []
        pool = _pool(log, hosts)
        order: list[str] = []
        first = asyncio.ensure_future(_generate(pool, "a", order))
        await _until(lambda: bool(hosts) and bool(hosts[0].pending))
        second = asyncio.ensure_future(_generate(pool, "b", order))
        third = asyncio.ensure_future(_generate(pool, "a", order))
        await _until(lambda: pool.queued == 2)
        with pytest.raises(ApiError) as caught:  # 1 running + 2 waiting: full
            async with pool.lease("a"):
                pass
        assert caught.value.status == 503 and caught.value.headers["Retry-After"] == "1"
        with pytest.raises(ApiError) as missing:
            async with pool.lease("../etc/passwd"):
                pass
        assert missing.value.status == 404
        host = hosts[0]
        for _ in range(3):
            await _until(lambda: bool(host.pending))
            host.finish(next(iter(host.pending)))
        await asyncio.gather(first, second, third)
        # "a" arrived after "b" waited: it waits for "b", not jumping the queue
        assert order == ["a", "b", "a"]
        assert [e for e in log if e.startswith("load")] == [
            "load /models/a.gguf", "load /models/b.gguf", "load /models/a.gguf"]
        assert pool.running == 0 and pool.served == 3

    asyncio.run(scenario())


def test_a_cancelled_request_frees_its_slot_when_the_host_ends_it() -> None:
    async def scenario() -> None:
        log: list[str] = []
        hosts: list[FakeHost] = []
        pool = _pool(log, hosts)
        task = asyncio.ensure_future(_generate(pool, "a", []))
        await _until(lambda: bool(hosts) and bool(hosts[0].pending))
        task.cancel()  # what aiohttp does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await task
        assert "cancel 1" in log
        await _until(lambda: pool.running == 0)

    asyncio.run(scenario())


def test_idle_unload_and_a_crashed_host_is_replaced() -> None:
    async def scenario() -> None:
        log: list[str] = []
        hosts: list[FakeHost] = []
        pool = _pool(log, hosts, idle_unload_s=0.05)
        task = asyncio.ensure_future(_generate(pool, "a", []))
        await _until(lambda: bool(hosts) and bool(hosts[0].pending))
        hosts[0].finish(1)
        await task
        await _until(lambda: "unload" in log)
        assert pool.loaded is None
        hosts[0].alive = False  # the host died while idle
        task = asyncio.ensure_future(_generate(pool, "a", []))
        await _until(lambda: len(hosts) == 2 and bool(hosts[1].pending))
        hosts[1].finish(1)
        await task
        assert log.count("start") == 2
        await pool.close()

    asyncio.run(scenario())
