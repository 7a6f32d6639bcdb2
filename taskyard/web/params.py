"""Reading what a management API request asks for: query and path parameters and JSON bodies.
A bad one raises `HTTPException(400, "why")`, which the API answers as `{"error": "why"}`."""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

E = TypeVar("E", bound=enum.Enum)
MAX_LIMIT = 1000


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers=headers)


def bad(message: str) -> HTTPException:
    return HTTPException(400, message)


def text(name: str, value: str) -> str:
    """A string parameter as the store can keep and compare it (PostgreSQL refuses NUL)."""
    if "\x00" in value:
        raise bad(f"{name} must not contain a NUL character")
    return value


def path(request: Request, name: str) -> str:
    return text(name, str(request.path_params[name]))


def query(request: Request, name: str) -> str | None:
    """An optional query parameter; given empty, it is taken as not given."""
    value = request.query_params.get(name)
    return text(name, value) if value else None


def choice(request: Request, name: str, kind: type[E], empty_is_absent: bool = False) -> E | None:
    value = request.query_params.get(name)
    if value is None or (empty_is_absent and not value):
        return None
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(str(k.value) for k in kind)
        raise bad(f"{name} must be one of {known}") from None


def limit(request: Request, default: int = 50) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise bad(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}`."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad("the body must be JSON") from None
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    return body


def optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad(f"{key} must be a string")
    return None if value is None else text(key, value)


def client_is_loopback(scope: Mapping[str, Any]) -> bool:
    """Whether the request came from this machine (loopback, or a unix socket)."""
    client = scope.get("client")
    if not client:  # a unix socket: only this machine reaches it
        return True
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))
