"""Secret redaction: one rule for taskyard's own logs and for everything an agent prints.

`Redactor(secrets)` replaces every configured secret value (`Settings.secrets()`: platform
tokens, webhook secrets, the API token, agents' model keys, the database URL's password) in a
text with `[redacted]`: as written, as JSON escapes it, and percent-encoded; for a multi-line
secret (a PEM key) also each of its long lines, so that a key printed line by line is caught.
Secrets shorter than `MIN_SECRET` characters are not looked for (they would hide ordinary
words). The byte form (`find_bytes`) lets a stream be cut only where no secret is split.

`secret_field(name)` is the rule for a structured log field *named* like a secret. The name is
split into words (`snake_case`, `kebab-case`, `camelCase`); it is secret when

- a word is one of `SECRET_WORDS` (secret, token, password, authorization, signature, …), or
  the whole name is one of `SECRET_NAMES` (apikey, privatekey, …), or
- its last word is `key` after a word of `KEY_QUALIFIERS` (`api_key`, `private_key`,
  `secret_key`, `access_key`, `signing_key`, `model_key`, …),

unless its last word is one of `NOT_SECRET_SUFFIXES` (`token_type`, `api_key_id`,
`secret_name`, `password_file`): those name or count a secret, they do not hold one. So
`action_key`, `idempotency_key`, `dedup_key`, `key`, `input_tokens` and `api_key_id` are shown;
`api_key`, `token`, `webhook_secret`, `accessToken`, `Authorization` and `client-secret` are
redacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

import orjson

__all__ = [
    "KEY_QUALIFIERS",
    "MIN_SECRET",
    "NOT_SECRET_SUFFIXES",
    "REDACTED",
    "SECRET_NAMES",
    "SECRET_WORDS",
    "Redactor",
    "secret_field",
]

REDACTED = "[redacted]"
MIN_SECRET = 4
_MIN_SECRET_LINE = 16  # a line of a multi-line secret shorter than this is not looked for

SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "token",
        "password",
        "passwd",
        "passphrase",
        "authorization",
        "signature",
        "credential",
        "credentials",
        "cookie",
    }
)
SECRET_NAMES = frozenset({"apikey", "privatekey", "secretkey", "accesskey", "pwd", "dsn"})
KEY_QUALIFIERS = frozenset(
    {
        "api",
        "private",
        "secret",
        "access",
        "signing",
        "encryption",
        "client",
        "master",
        "model",
        "session",
        "auth",
        "license",
        "webhook",
    }
)
NOT_SECRET_SUFFIXES = frozenset(
    {"id", "ids", "type", "name", "names", "file", "path", "count", "env", "url", "set"}
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


def secret_field(name: str) -> bool:
    """Whether a structured field named `name` holds a secret (see the module docstring)."""
    words = _words(name)
    if not words or words[-1] in NOT_SECRET_SUFFIXES:
        return False
    if "".join(words) in SECRET_NAMES or any(w in SECRET_WORDS for w in words):
        return True
    return len(words) >= 2 and words[-1] == "key" and words[-2] in KEY_QUALIFIERS


def _forms(secret: str) -> set[str]:
    """The ways a secret shows up in text: as is, JSON-escaped, percent-encoded; and each long
    line of a multi-line secret (a PEM key's base64 lines)."""
    found = {secret, orjson.dumps(secret).decode()[1:-1], quote(secret, safe="")}
    if "\n" in secret:
        for line in secret.splitlines():
            line = line.strip()
            if len(line) >= _MIN_SECRET_LINE and not line.startswith("-----"):
                found.add(line)
    return {f for f in found if len(f) >= MIN_SECRET}


class Redactor:
    """Replaces configured secret values with `[redacted]`; immutable, cheap to share."""

    __slots__ = ("_bytes", "_pattern", "longest", "secrets")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        wanted = sorted({s for s in secrets if s and len(s) >= MIN_SECRET})
        self.secrets: tuple[str, ...] = tuple(wanted)
        forms = sorted({f for s in wanted for f in _forms(s)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, forms))) if forms else None
        encoded = [f.encode() for f in forms]
        self._bytes = re.compile(b"|".join(map(re.escape, encoded))) if encoded else None
        self.longest = max((len(b) for b in encoded), default=0)  # bytes of the longest form

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Redactor) and other.secrets == self.secrets

    def __hash__(self) -> int:
        return hash(self.secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"  # never the secrets themselves

    def with_secrets(self, secrets: Iterable[str | None]) -> Redactor:
        """A redactor of these secrets and the ones this one has."""
        return Redactor((*self.secrets, *secrets))

    def redact(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def redact_bytes(self, data: bytes) -> bytes:
        if self._bytes is None:
            return data
        return self._bytes.sub(REDACTED.encode(), data)

    def safe_cut(self, data: bytes, at: int) -> int:
        """A position at or before `at` where cutting `data` splits no secret (the start of
        one that spans `at`); `at` itself when none does. Never 0 unless `at` is."""
        if self._bytes is None or at <= 0:
            return at
        start = max(0, at - self.longest)
        for match in self._bytes.finditer(data, start, min(len(data), at + self.longest)):
            if match.start() < at < match.end():
                return match.start() or match.end()
        return at
