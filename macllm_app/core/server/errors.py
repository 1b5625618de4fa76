"""Errors as OpenAI's API shapes them: `{"error": {"message", "type", "param", "code"}}`.

`ApiError` is raised anywhere in a handler and becomes that JSON with its HTTP
status; a pydantic `ValidationError` becomes a 400 that names the field.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from macllm_app.core.errors import one_line

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 408: "timeout_error",
          413: "invalid_request_error", 429: "rate_limit_error", 503: "server_overloaded"}


class ApiError(Exception):
    """A request the server refuses or cannot serve, with the status it deserves."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        kind = _TYPES.get(self.status, "server_error" if self.status >= 500
                          else "invalid_request_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param,
                          "code": self.code}}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a JSON path: messages[0].content."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def _is_type_tag(part: int | str) -> bool:
    """Unions add each branch's type to an error's location; field names look unlike them."""
    if isinstance(part, int):
        return False
    return (part in _TYPE_TAGS or part[:1].isupper()
            or any(c in part for c in "[('"))


def from_validation(exc: ValidationError) -> ApiError:
    """400 naming the first invalid field (and how many more there are)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(p for p in first["loc"] if not _is_type_tag(p))
    param = field_path(loc) or None
    reason = one_line(first["msg"]).removeprefix("Value error, ")
    message = f"Invalid field {param}: {reason}" if param else reason
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ApiError(400, message, param=param, code="invalid_value")


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or a 400 that says it is not."""
    if not raw:
        raise ApiError(400, "The request body is empty; send a JSON object.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {one_line(exc)}") from None
