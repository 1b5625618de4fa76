"""The server's guard, checked before any handler runs (secure by default):

- the Host header must name this server (DNS rebinding: a page on evil.example
  resolving to 127.0.0.1 sends `Host: evil.example`), else 403;
- a browser request whose Origin is neither this server nor on the allow-list
  is refused with 403 (CORS is off by default); preflights are answered only
  for allowed origins;
- with an API key, every request but /health must carry `Authorization: Bearer KEY` (401);
- a body over the cap is refused before it is read (413).
"""

from __future__ import annotations

import hmac
import socket
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import hdrs, web

from macllm_app.core.server.config import LOOPBACK_NAMES, ServerConfig
from macllm_app.core.server.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/health", "/v1/health"})
CORS_HEADERS = "Authorization, Content-Type"
CORS_METHODS = "GET, POST, OPTIONS"
CORS_ORIGIN = web.RequestKey("macllm_cors_origin", str)


def _local_addresses() -> set[str]:
    import psutil

    names = {socket.gethostname(), socket.gethostname() + ".local", socket.getfqdn()}
    for addresses in psutil.net_if_addrs().values():
        names.update(a.address.split("%")[0] for a in addresses
                     if a.family in (socket.AF_INET, socket.AF_INET6))
    return names


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def bound_names(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a Host header may carry for a server bound to `host` (without port)."""
    names = set(LOOPBACK_NAMES) | {host} | set(extra)
    if host in ("0.0.0.0", "::", ""):
        names |= _local_addresses()
    return frozenset(_bracketed(n).lower() for n in names if n)


def split_host(value: str) -> tuple[str, int | None]:
    """`name:port` (or `[v6]:port`) as (name, port)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = value[:end + 1], value[end + 1:]
    else:
        name, _, port_text = value.partition(":")
        rest = ":" + port_text if port_text else ""
    if rest.startswith(":") and rest[1:].isdigit():
        return name, int(rest[1:])
    return name, None if not rest else -1


class Guard:
    """The security middleware; `bind(port)` once the real port is known."""

    def __init__(self, config: ServerConfig, api_key: str | None) -> None:
        self.config = config
        self.api_key = api_key
        self.names = bound_names(config.host, config.allowed_hosts)
        self.port = config.port
        self.origins = frozenset(o.rstrip("/").lower() for o in config.allowed_origins)

    def bind(self, port: int) -> None:
        self.port = port

    def host_ok(self, header: str | None) -> bool:
        if not header:
            return False
        name, port = split_host(header)
        return name in self.names and port in (None, self.port)

    def same_origin(self, origin: str, host_header: str) -> bool:
        return origin in (f"http://{host_header.lower()}", f"https://{host_header.lower()}")

    def origin_allowed(self, origin: str) -> bool:
        return origin in self.origins or "*" in self.origins

    def _key_ok(self, request: web.Request) -> bool:
        if not self.api_key or request.path in OPEN_PATHS:
            return True
        scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.api_key.encode())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get(hdrs.HOST)
        if not self.host_ok(host):
            raise ApiError(403, "This server does not answer to that Host name.",
                           code="forbidden_host")
        origin = request.headers.get(hdrs.ORIGIN, "").rstrip("/").lower()
        cross = bool(origin) and not self.same_origin(origin, host or "")
        if cross and not self.origin_allowed(origin):
            raise ApiError(403, "Requests from this web origin are not allowed (add it to "
                           "the server's allowed origins).", code="forbidden_origin")
        if request.method == hdrs.METH_OPTIONS and cross:
            return web.Response(status=204, headers=self._cors(origin, preflight=True))
        if not self._key_ok(request):
            raise ApiError(401, "A valid API key is required (Authorization: Bearer KEY).",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        length = request.content_length
        if length is not None and length > self.config.max_body_bytes:
            raise ApiError(413, f"The request body is {length} bytes; this server accepts "
                           f"at most {self.config.max_body_bytes}.", code="body_too_large")
        if cross:
            request[CORS_ORIGIN] = origin
        return await handler(request)

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Allowed cross-origin requests get CORS headers on every answer, streamed or not."""
        origin = request.get(CORS_ORIGIN)
        if origin is not None:
            response.headers.update(self._cors(origin, preflight=False))

    def _cors(self, origin: str, *, preflight: bool) -> dict[str, str]:
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if preflight:
            headers.update({"Access-Control-Allow-Methods": CORS_METHODS,
                            "Access-Control-Allow-Headers": CORS_HEADERS,
                            "Access-Control-Max-Age": "600"})
        return headers

