"""A real `LocalServer` on 127.0.0.1 (a free port) on its own event-loop thread, so tests
can call it with blocking clients (the openai client, urllib, raw sockets)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from macllm_app.core.server.app import LocalServer, RequestRecord
from macllm_app.core.server.config import ServerConfig

T = TypeVar("T")

#: Small and quick for the 135M default model on a shared 2-core CPU.
TEST_CONFIG = {"port": 0, "n_ctx": 1024, "parallel": 2, "queue_size": 4, "idle_unload_s": 0,
               "n_threads": 1,
               "use_keychain": False}


class ServerThread:
    def __init__(self, **overrides: Any) -> None:
        self.config = ServerConfig(**{**TEST_CONFIG, **overrides})
        self.server = LocalServer(self.config)
        self.records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-server",
                                        daemon=True)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, load: bool = True) -> ServerThread:
        self._thread.start()
        self.server.add_listener(self._record)
        self.run(self.server.start())
        if load:
            self.run(self.server.load_model())
        return self

    def stop(self) -> None:
        try:
            self.run(self.server.stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.records.append(record)

    def wait_record(self, match: Callable[[RequestRecord], bool],
                    timeout: float = 30) -> RequestRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [r for r in self.records if match(r)]
            if found:
                return found[-1]
            time.sleep(0.01)
        raise AssertionError("no such request record arrived")

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.server.port}"
