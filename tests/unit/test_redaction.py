"""Secret redaction: which field names hide their value, and which values are hidden."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from taskyard.config import Settings
from taskyard.observe.metrics import JsonFormatter
from taskyard.util.redaction import REDACTED, Redactor, secret_field

SHOWN = [
    "action_key",
    "idempotency_key",
    "dedup_key",
    "key",
    "sort_key",
    "api_key_id",
    "key_id",
    "input_tokens",
    "output_tokens",
    "max_tokens",
    "token_type",
    "secret_name",
    "password_file",
    "task_id",
    "monkey",
    "keyboard",
]
HIDDEN = [
    "api_key",
    "apiKey",
    "APIKey",
    "apikey",
    "token",
    "access_token",
    "accessToken",
    "webhook_secret",
    "client-secret",
    "secret",
    "password",
    "db_password",
    "Authorization",
    "authorization",
    "x-hub-signature-256",
    "private_key",
    "model_key",
    "signing_key",
    "credentials",
    "cookie",
]


@pytest.mark.parametrize("name", SHOWN)
def test_ids_and_counts_named_like_keys_are_shown(name: str) -> None:
    assert not secret_field(name)


@pytest.mark.parametrize("name", HIDDEN)
def test_secret_names_are_hidden(name: str) -> None:
    assert secret_field(name)


def _json_line(**extra: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.redaction")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning("x", extra=extra)
    return dict(orjson.loads(stream.getvalue()))


def test_the_log_shows_an_action_key_and_hides_an_api_key() -> None:
    line = _json_line(action_key="t1:0:comment", api_key="lin_api_x", input_tokens=12)
    assert line["action_key"] == "t1:0:comment"  # was "[redacted]": any name with "key"
    assert line["input_tokens"] == 12  # was "[redacted]": any name with "token"
    assert line["api_key"] == REDACTED


def test_values_are_hidden_as_written_json_escaped_and_percent_encoded() -> None:
    secret = 'p@ss"word/ü'
    r = Redactor([secret, "abc"])  # shorter than 4: not looked for
    assert r.redact(f"a {secret} b") == f"a {REDACTED} b"
    escaped = orjson.dumps({"v": secret}).decode()
    assert secret not in r.redact(escaped) and REDACTED in r.redact(escaped)
    assert r.redact("u=p%40ss%22word%2F%C3%BC") == f"u={REDACTED}"
    assert r.redact("abc abcd") == "abc abcd"
    assert r.redact_bytes(f"x{secret}x".encode()) == f"x{REDACTED}x".encode()
    assert repr(r) == "Redactor(1 secrets)"  # never the values; "abc" is too short


def test_each_line_of_a_pem_key_is_hidden() -> None:
    body = ["MIIEowIBAAKCAQEAx7y9" + "A" * 44, "Zm9vYmFyYmF6cXV4" + "B" * 48]
    pem = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END RSA PRIVATE KEY-----"
    shown = Redactor([pem]).redact(f"cat key.pem\n{body[1]}\n")
    assert body[1] not in shown and REDACTED in shown


def test_a_cut_never_splits_a_secret() -> None:
    secret = "sk-live-0123456789"
    data = b"x" * 10 + secret.encode() + b"y" * 10
    r = Redactor([secret])
    assert r.safe_cut(data, 15) == 10  # inside the secret: cut before it
    assert r.safe_cut(data, 5) == 5
    assert Redactor().safe_cut(data, 15) == 15
    at_start = secret.encode() + b"tail"
    assert r.safe_cut(at_start, 3) == len(secret)  # it starts at 0: cut after it


def test_settings_secrets_include_the_database_password_and_agent_env_keys() -> None:
    settings = Settings.model_validate(
        {
            "database_url": "postgresql://taskyard:db-pass-42x@localhost/ty",
            "agents": {
                "codex": {
                    "kind": "codex",
                    "api_key": "sk-model-key-1",
                    "env": {"OPENAI_API_KEY": "sk-env-key-2", "LANG": "C.UTF-8"},
                },
                "claude": {"kind": "claude"},
            },
        }
    )
    found = settings.secrets()
    assert {"db-pass-42x", "sk-model-key-1", "sk-env-key-2"} <= set(found)
    assert "C.UTF-8" not in found
