"""One engine host serving the library's models, one model at a time, to many requests.

What it promises:
- admission: at most `parallel` requests run and `queue_size` wait; the next one
  gets a 503 with Retry-After at once;
- the model a request names is loaded on demand (in a thread, off the loop);
  requests for another model wait until the running ones end, in arrival
  order, then the host switches models;
- after `idle_unload_s` with nothing to do the model is unloaded;
- a request whose client leaves is cancelled in the host, and its slot is freed
  only when the host says it ended, so a switch never cuts a reply short;
- a crashed host is replaced on the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

from macllm_app.core.errors import EngineCrashed, EngineError, one_line
from macllm_app.core.server.config import ServerConfig
from macllm_app.core.server.engine_link import SlotHostLike, engine_failure, slot_host
from macllm_app.core.server.errors import ApiError
from macllm_app.core.server.generation import Generation
from macllm_app.core.server.models import ModelDirectory, ServedModel
from macllm_app.core.types import GenerationRequest, LoadConfig

log = logging.getLogger("macllm.server.pool")

RETRY_AFTER_S = 1


class _Ticket:
    __slots__ = ("model",)

    def __init__(self, model: ServedModel) -> None:
        self.model = model


class Lease:
    """One admitted request's turn on the loaded model."""

    def __init__(self, pool: ModelPool, model: ServedModel, host: SlotHostLike,
                 template: str) -> None:
        self.pool = pool
        self.model = model
        self.host = host
        self.template = template
        self.generation: Generation | None = None

    def generate(self, request: GenerationRequest) -> Generation:
        generation = Generation(asyncio.get_running_loop(), self.host)
        try:
            generation.start(request)
        except Exception as exc:  # the host died between requests
            raise self.pool.failed(exc) from None
        self.generation = generation
        return generation

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        try:
            return await asyncio.to_thread(self.host.embed, list(texts))
        except Exception as exc:
            raise self.pool.failed(exc) from None

    async def count_tokens(self, text: str) -> int:
        try:
            return len(await asyncio.to_thread(self.host.tokenize, text))
        except Exception as exc:
            raise self.pool.failed(exc) from None


class ModelPool:
    def __init__(self, config: ServerConfig,
                 host_factory: Callable[[int], SlotHostLike] = slot_host,
                 directory: ModelDirectory | None = None) -> None:
        self.config = config
        self.directory = directory or ModelDirectory(config.model)
        self._host_factory = host_factory
        self._host: SlotHostLike | None = None
        self._loaded: ServedModel | None = None
        self._template = ""
        self._waiting: deque[_Ticket] = deque()
        self._running = 0
        self._busy = False  # loading, switching or unloading
        self._changed = asyncio.Event()
        self._idle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.served = 0
        self.closing = False

    # -- what the server shows ---------------------------------------------
    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def loaded(self) -> ServedModel | None:
        return self._loaded

    # -- admission and turns -------------------------------------------------
    async def resolve(self, ref: str | None) -> ServedModel:
        return await asyncio.to_thread(self.directory.resolve, ref)

    @contextlib.asynccontextmanager
    async def lease(self, ref: str | None) -> AsyncIterator[Lease]:
        """Admit a request for model `ref`, wait for its turn (loading the model), and
        hold a running slot until the body ends and the host has ended its generation."""
        if self.closing:
            raise ApiError(503, "The server is stopping.", code="server_stopping")
        model = await self.resolve(ref)
        limit = self.config.parallel + self.config.queue_size
        if self._running + len(self._waiting) >= limit:
            raise ApiError(503, f"The server is busy ({self._running} requests running, "
                           f"{len(self._waiting)} waiting); try again shortly.",
                           code="server_busy", headers={"Retry-After": str(RETRY_AFTER_S)})
        ticket = _Ticket(model)
        self._waiting.append(ticket)
        try:
            await self._wait_turn(ticket)
        finally:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
                self._notify()
        assert self._host is not None
        lease = Lease(self, model, self._host, self._template)
        try:
            yield lease
        finally:
            generation = lease.generation
            if generation is not None and not generation.done:
                generation.cancel()
                generation.on_done(self._release)
            else:
                self._release()

    def _may_start(self, ticket: _Ticket) -> bool:
        if self._busy or self._running >= self.config.parallel or self._loaded is None:
            return False
        for earlier in self._waiting:
            if earlier is ticket:
                return earlier.model.id == self._loaded.id
            if earlier.model.id != self._loaded.id:
                return False  # someone before us waits for another model
        return False

    def _may_switch(self, ticket: _Ticket) -> bool:
        return (not self._busy and self._running == 0 and bool(self._waiting)
                and self._waiting[0] is ticket
                and (self._loaded is None or self._loaded.id != ticket.model.id
                     or self._host is None or not self._host.is_alive()))

    async def _wait_turn(self, ticket: _Ticket) -> None:
        while True:
            if self._may_start(ticket):
                self._waiting.remove(ticket)
                self._running += 1
                self._cancel_idle()
                return
            if self._may_switch(ticket):
                self._busy = True
                try:
                    await self._switch_to(ticket.model)
                finally:
                    self._busy = False
                    self._notify()
                continue
            changed = self._changed
            await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _release(self) -> None:
        self._running -= 1
        self.served += 1
        self._notify()
        if self._running == 0 and not self._waiting:
            self._schedule_idle()

    def failed(self, exc: BaseException) -> ApiError:
        """The error for an engine failure; a crash forgets the host (a new one starts)."""
        if isinstance(exc, EngineCrashed):
            self._loaded = None
        return engine_failure(exc)

    # -- loading -----------------------------------------------------------
    async def _switch_to(self, model: ServedModel) -> None:
        config = model.load_config(self.config.n_ctx, self.config.n_threads)
        try:
            self._template = await asyncio.to_thread(self._load, config)
        except Exception as exc:
            self._loaded = None
            log.warning("could not load %s: %s", model.name, one_line(exc))
            if isinstance(exc, EngineError):
                raise ApiError(500, f"Could not load {model.name}: {one_line(exc)}",
                               code="model_load_failed") from None
            raise engine_failure(exc) from None
        self._loaded = model
        log.info("serving %s (%s)", model.name, model.engine)

    def _load(self, config: LoadConfig) -> str:
        host = self._host
        if host is None or not host.is_alive():
            if host is not None:
                host.shutdown()
            host = self._host = self._host_factory(self.config.parallel)
            host.start()
        elif host.model is not None:
            host.unload()
        self._loaded = None
        host.load(config)
        return host.chat_template()

    async def load(self, ref: str | None = None) -> ServedModel:
        """Load `ref` now (e.g. at start-up), waiting for running requests as any would."""
        async with self.lease(ref) as lease:
            return lease.model

    def _schedule_idle(self) -> None:
        self._cancel_idle()
        if self.config.idle_unload_s > 0 and self._loaded is not None:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.config.idle_unload_s, self._start_idle_unload)

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _start_idle_unload(self) -> None:
        task = asyncio.get_running_loop().create_task(self._unload_if_idle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unload_if_idle(self) -> None:
        host = self._host
        if self._busy or self._running or self._waiting or host is None:
            return
        self._busy = True
        try:
            log.info("unloading %s after %.0f s idle", self._loaded and self._loaded.name,
                     self.config.idle_unload_s)
            self._loaded = None
            await asyncio.to_thread(host.unload)
        except Exception as exc:  # a dead host is replaced on the next request
            log.warning("idle unload failed: %s", one_line(exc))
        finally:
            self._busy = False
            self._notify()

    async def close(self) -> None:
        """Stop the host (requests still running end with the host)."""
        self._cancel_idle()
        for task in list(self._tasks):
            task.cancel()
        host, self._host, self._loaded = self._host, None, None
        if host is not None:
            await asyncio.to_thread(host.shutdown)
