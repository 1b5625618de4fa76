"""`macllm serve`: the OpenAI- and Ollama-compatible server, headless, until Ctrl+C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the server (aiohttp) loads only when `serve` runs
    from macllm_app.core.server.config import ServerConfig


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve the library over an OpenAI- and Ollama-compatible "
                                     "HTTP API")
    p.add_argument("--model", help="library id or name loaded at start and used when a "
                                   "request names none (default: the default model)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; others need an API key)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: any)")
    p.add_argument("--api-key", help="key clients must send as 'Authorization: Bearer KEY' "
                                     "(default: the one stored in the keychain, if any)")
    p.add_argument("--parallel", type=int, default=4, metavar="N",
                   help="requests decoded together (default 4)")
    p.add_argument("--queue", type=int, default=16, metavar="N",
                   help="requests that may wait beyond those (default 16)")
    p.add_argument("--ctx", type=int, default=None, help="context per request, in tokens")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="web origin (scheme://host:port) allowed to call the API (repeatable)")
    p.add_argument("--idle-unload", type=float, default=600.0, metavar="S",
                   help="unload the model after S seconds idle (0: never)")
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    from pydantic import ValidationError

    from macllm_app.core.errors import UserError
    from macllm_app.core.server.config import ServerConfig
    from macllm_app.core.server.errors import from_validation

    try:
        return ServerConfig(host=args.host, port=args.port, api_key=args.api_key,
                            parallel=args.parallel, queue_size=args.queue, n_ctx=args.ctx,
                            n_threads=args.threads,
                            allowed_origins=tuple(args.allow_origin), model=args.model,
                            idle_unload_s=args.idle_unload)
    except ValidationError as exc:
        raise UserError(from_validation(exc).message.replace("Invalid field ", "--")) from None


async def serve(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM, then stop cleanly (the engine host with it)."""
    from macllm_app.core.server.app import LocalServer

    server = LocalServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        print(f"Loading {config.model or 'the default model'}...", file=sys.stderr, flush=True)
        load = asyncio.ensure_future(server.load_model(config.model))
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait({load, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if load.done():
            model = load.result()
            print(f"Serving {model.name} on {server.url} (OpenAI: {server.url}/v1, Ollama: "
                  f"{server.url}). Ctrl+C stops.", flush=True)
            if server.requires_key:
                print("Clients must send the API key: Authorization: Bearer KEY.",
                      file=sys.stderr, flush=True)
            await waiter
        else:
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()
    print("Server stopped.", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    asyncio.run(serve(config_from_args(args)))
    return 0
