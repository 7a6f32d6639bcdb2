"""Reading what a management API request asks for: query and path parameters and JSON bodies.
A bad one raises `HTTPException(400, "why")`, which the API answers as `{"error": "why"}`."""

from __future__ import annotations

import enum
import ipaddress
import re
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
    """Whether the request came from this machine (loopback, or a unix socket) for this
    machine, and was not relayed for anyone else: a request that carries `X-Forwarded-For`
    or `Forwarded` naming any address that is not loopback (a reverse proxy on this machine
    relaying a remote client) is not, nor one whose Host is not a loopback name (a page of
    another site whose name was pointed at 127.0.0.1: DNS rebinding)."""
    client = scope.get("client")
    if client and not _loopback(str(client[0])):
        return False
    for name, value in scope.get("headers") or ():
        if name.lower() == b"host" and not _local_host(value.decode("latin-1")):
            return False  # DNS rebinding: another site's name pointed at 127.0.0.1
        if name.lower() == b"x-forwarded-for":
            hops = value.decode("latin-1").split(",")
        elif name.lower() == b"forwarded":
            hops = re.findall(r"(?i)\bfor\s*=\s*\"?\[?([^\]\";,]*)", value.decode("latin-1"))
        else:
            continue
        if not all(_loopback(hop.strip()) for hop in hops):
            return False
    return True  # no client: a unix socket, only this machine reaches it


def _local_host(host: str) -> bool:
    """Whether a Host header names this machine: `localhost` (or a name under it), or a
    loopback address, with any port."""
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    return name == "localhost" or name.endswith(".localhost") or _loopback(name)


def _loopback(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))
