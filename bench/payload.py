"""The delivery every benchmark sends: a ~5 KB GitHub `pull_request.opened`, signed.

The body is the public example payload from `shared/webhooks/github/` with the long URL
templates removed (they are most of its 25 KB) and the pull request's description padded so
that the compact JSON is exactly `TARGET_SIZE` bytes. The body is the same for every request;
only the `X-GitHub-Delivery` header changes, since the server deduplicates by it and GitHub's
signature covers the body alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

TARGET_SIZE = 5_000
DEFAULT_SECRET = "bench-github-secret"
EXAMPLE = Path(__file__).resolve().parents[2] / "shared/webhooks/github/pull_request.opened.json"
_FILLER = (
    "This change updates the README with new information about installation, "
    "configuration and the release process. "
)


def _strip_urls(value: Any) -> Any:
    """Drop `*_url` fields and `_links`; keep everything else as GitHub sends it."""
    if isinstance(value, dict):
        return {
            key: _strip_urls(item)
            for key, item in value.items()
            if not (key.endswith("_url") or key == "_links")
        }
    if isinstance(value, list):
        return [_strip_urls(item) for item in value]
    return value


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def build_body(size: int = TARGET_SIZE, example: Path = EXAMPLE) -> bytes:
    """The compact JSON body, exactly `size` bytes (or the trimmed example if larger)."""
    payload = _strip_urls(json.loads(example.read_text()))
    pull = payload["pull_request"]
    base = pull["body"] + "\n\n"
    pull["body"] = base
    missing = size - len(_dump(payload))
    if missing > 0:
        pull["body"] = base + (_FILLER * (missing // len(_FILLER) + 1))[:missing]
    return _dump(payload)


def signature(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def static_headers(body: bytes, secret: str) -> dict[str, str]:
    """Every header of a delivery except `X-GitHub-Delivery`."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-GitHub-Event": "pull_request",
        "X-Hub-Signature-256": signature(body, secret),
    }


def delivery_prefix() -> str:
    """A random `xxxxxxxx-xxxx-xxxx` prefix; callers append `-tttt-cccccccccccc` (UUID shape)."""
    raw = secrets.token_hex(8)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}"


def delivery_id(prefix: str, stream: int, counter: int) -> str:
    """A unique, UUID-shaped delivery id: one `stream` per connection or thread."""
    return f"{prefix}-{stream:04x}-{counter:012x}"
