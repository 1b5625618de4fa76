"""`LocalServer`: the OpenAI- and Ollama-compatible HTTP API over the library's models.

It runs on whatever asyncio loop starts it: `asyncio.run` for `macllm serve`,
the Qt loop (qasync) in the app. What it promises:
- secure by default (see `security`): loopback bind, Host and Origin checks,
  an API key required off loopback, capped bodies, prompts and replies;
- every error is OpenAI-shaped JSON with the right status; a bug is logged with
  its traceback and answered with a 500;
- each finished request is reported to listeners as a `RequestRecord`, on the
  server's loop; a request whose client left is reported when the engine has
  actually stopped its generation (finish reason "cancelled");
- a client that disconnects cancels its generation (handler cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from macllm_app.core.errors import UserError, one_line
from macllm_app.core.server import ollama_routes, openai_routes
from macllm_app.core.server.config import ServerConfig, effective_api_key
from macllm_app.core.server.engine_link import SlotHostLike, slot_host
from macllm_app.core.server.errors import ApiError
from macllm_app.core.server.model_pool import ModelPool
from macllm_app.core.server.models import ServedModel
from macllm_app.core.server.security import Guard, Handler
from macllm_app.core.server.state import STATE, RequestNotes, ServerState, notes_of

log = logging.getLogger("macllm.server")

#: The status logged for a request whose client went away (nginx's convention).
CLIENT_CLOSED = 499
#: How long stopping waits for requests still being answered.
SHUTDOWN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished request, for the request log. `time` is when it ended (time.time())."""

    time: float
    method: str
    path: str
    status: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    duration_s: float
    client: str
    finish_reason: str = ""


@dataclass(frozen=True, slots=True)
class ServerStats:
    active_clients: int  # HTTP requests being answered now
    requests_served: int
    running: int  # generations in the engine
    queued: int  # admitted requests waiting for their turn
    model: str | None  # the loaded model's id


Listener = Callable[[RequestRecord], None]


class LocalServer:
    def __init__(self, config: ServerConfig | None = None,
                 host_factory: Callable[[int], SlotHostLike] = slot_host) -> None:
        self.config = config or ServerConfig()
        self.pool = ModelPool(self.config, host_factory)
        self._listeners: list[Listener] = []
        self._runner: web.AppRunner | None = None
        self._port = self.config.port
        self._active = 0
        self._served = 0
        self._guard: Guard | None = None

    # -- what the GUI shows --------------------------------------------------
    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def requires_key(self) -> bool:
        """True while serving with an API key (given, or the keychain's)."""
        return self._guard is not None and self._guard.api_key is not None

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def stats(self) -> ServerStats:
        loaded = self.pool.loaded
        return ServerStats(self._active, self._served, self.pool.running, self.pool.queued,
                           loaded.id if loaded else None)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # -- lifetime ------------------------------------------------------------
    async def start(self) -> None:
        """Bind and serve. UserError: no API key for a non-loopback bind, port taken."""
        if self._runner is not None:
            return
        self.pool.closing = False
        api_key = effective_api_key(self.config)
        guard = Guard(self.config, api_key)
        app = web.Application(middlewares=[self._records, _errors, guard.middleware],
                              client_max_size=self.config.max_body_bytes)
        app[STATE] = ServerState(self.config, self.pool)
        app.add_routes(openai_routes.routes)
        app.add_routes(ollama_routes.routes)
        app.on_response_prepare.append(guard.on_prepare)
        # keepalive_timeout also closes a connection that has not sent its headers in time
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                               keepalive_timeout=self.config.client_timeout_s,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"Port {self.config.port} on {self.config.host} is already "
                                "in use (by another program?); choose another port.") from None
            raise UserError(f"Cannot listen on {self.config.host}:{self.config.port} "
                            f"({exc.strerror or exc}).") from None
        self._port = _bound_port(runner, self.config.port)
        guard.bind(self._port)
        self._guard = guard
        self._runner = runner
        log.info("serving on %s", self.url)

    async def load_model(self, ref: str | None = None) -> ServedModel:
        """Load `ref` (None: the default model) now, as a request naming it would."""
        try:
            return await self.pool.load(ref)
        except ApiError as exc:
            raise UserError(exc.message) from None

    async def stop(self) -> None:
        """Stop serving: the engine host goes first, so replies still streaming end at
        once (with an error event) instead of holding the shutdown up."""
        runner, self._runner = self._runner, None
        self.pool.closing = True
        await self.pool.close()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the request log -------------------------------------------------------
    @web.middleware
    async def _records(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        self._active += 1
        notes = notes_of(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            self._active -= 1
            self._served += 1
            self._report(request, notes, status, started)

    def _report(self, request: web.Request, notes: RequestNotes, status: int,
                started: float) -> None:
        generation = notes.generation

        def emit() -> None:
            stats = generation.stats if generation is not None else None
            record = RequestRecord(
                time=time.time(), method=request.method, path=request.path,
                status=status, model=notes.model,
                prompt_tokens=stats.prompt_tokens if stats else notes.prompt_tokens,
                completion_tokens=stats.generated_tokens if stats else notes.completion_tokens,
                duration_s=time.monotonic() - started, client=request.remote or "",
                finish_reason=stats.finish_reason if stats else notes.finish_reason)
            for listener in list(self._listeners):
                try:
                    listener(record)
                except Exception:
                    log.exception("a request listener failed")

        if generation is not None and not generation.done:
            generation.on_done(emit)  # the client left: report when the engine stopped
        else:
            emit()


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return fallback


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.reason if exc.status != 413 else (
            f"The request body is larger than the {request.app[STATE].config.max_body_bytes} "
            "bytes this server accepts.")
        if exc.status == 404:
            reason = f"There is no endpoint {request.method} {request.path} on this server."
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return ApiError(exc.status, reason, headers=headers).response()
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except UserError as exc:  # e.g. an unreadable library file: the server's problem
        return ApiError(500, one_line(exc), code="server_error").response()
    except Exception:
        log.exception("bug while answering %s %s", request.method, request.path)
        return ApiError(500, "A bug in MacLLM's server; the log has the details.",
                        code="internal_error").response()
