"""GitHub App auth: a JWT buys an installation token, which is cached and minted again
before its hour ends (the clock is injected)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from taskyard.exceptions import ConfigError, PlatformPermanentError
from taskyard.platforms.github import GitHubClient
from tests.unit.platforms.conftest import Clock, Script, Sleeps, json_response

APP_ID = "123456"
EXPIRES = "2030-01-01T12:00:00Z"
EXPIRES_AT = datetime(2030, 1, 1, 12, tzinfo=UTC).timestamp()
TOKEN_PATH = "/app/installations/42/access_tokens"
PR = "/repos/octo/app/pulls/7"


def minted(token: str, expires: str = EXPIRES) -> httpx.Response:
    return json_response(201, {"token": token, "expires_at": expires})


def app_client(script: Script, sleeps: Sleeps, clock: Clock, pem: str, **kw: int) -> GitHubClient:
    return GitHubClient(
        app_id=APP_ID,
        private_key=pem,
        transport=script.transport,
        sleep=sleeps,
        clock=clock,
        refresh_margin=300,
        **kw,
    )


def auth_of(request: httpx.Request) -> str:
    return request.headers["authorization"]


async def test_jwt_buys_a_token_used_for_reads(
    script: Script, sleeps: Sleeps, clock: Clock, private_key_pem: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock.now = EXPIRES_AT - 3600
    script.on("POST", TOKEN_PATH, minted("ghs_first"))
    script.on("GET", PR, json_response(200, {"number": 7}))
    github = app_client(script, sleeps, clock, private_key_pem)
    await github.pull_request("octo/app", 7, installation_id=42)
    mint, read = script.requests
    scheme, _, token = auth_of(mint).partition(" ")
    claims = jwt.decode(token, rsa_key.public_key(), algorithms=["RS256"])
    assert scheme == "Bearer" and claims["iss"] == APP_ID
    assert auth_of(read) == "token ghs_first"


async def test_token_is_cached_then_minted_again_before_expiry(
    script: Script, sleeps: Sleeps, clock: Clock, private_key_pem: str
) -> None:
    clock.now = EXPIRES_AT - 3600
    later = "2030-01-01T13:00:00Z"
    script.on("POST", TOKEN_PATH, minted("ghs_first"), minted("ghs_second", later))
    script.on("GET", PR, json_response(200, {"number": 7}))
    github = app_client(script, sleeps, clock, private_key_pem)
    await github.pull_request("octo/app", 7, installation_id=42)
    clock.now = EXPIRES_AT - 301  # still more than the 300 s margin left
    await github.pull_request("octo/app", 7, installation_id=42)
    assert script.paths().count(TOKEN_PATH) == 1
    clock.now = EXPIRES_AT - 299  # inside the margin: refreshed before it runs out
    await github.pull_request("octo/app", 7, installation_id=42)
    assert script.paths().count(TOKEN_PATH) == 2
    assert [auth_of(r) for r in script.requests if r.url.path == PR] == [
        "token ghs_first",
        "token ghs_first",
        "token ghs_second",
    ]


async def test_installation_is_looked_up_by_repository_once(
    script: Script, sleeps: Sleeps, clock: Clock, private_key_pem: str
) -> None:
    clock.now = EXPIRES_AT - 3600
    script.on("GET", "/repos/octo/app/installation", json_response(200, {"id": 42}))
    script.on("POST", TOKEN_PATH, minted("ghs_first"))
    script.on("GET", PR, json_response(200, {"number": 7}))
    github = app_client(script, sleeps, clock, private_key_pem)
    await github.pull_request("octo/app", 7)
    await github.pull_request("octo/app", 7)
    assert script.paths() == ["/repos/octo/app/installation", TOKEN_PATH, PR, PR]
    assert auth_of(script.requests[0]).startswith("Bearer ")


async def test_configured_installation_is_the_fallback(
    script: Script, sleeps: Sleeps, clock: Clock, private_key_pem: str
) -> None:
    clock.now = EXPIRES_AT - 3600
    script.on("POST", TOKEN_PATH, minted("ghs_first"))
    script.on("GET", PR, json_response(200, {"number": 7}))
    github = app_client(script, sleeps, clock, private_key_pem, installation_id=42)
    await github.pull_request("octo/app", 7)
    assert script.paths() == [TOKEN_PATH, PR]


async def test_a_refused_token_is_replaced(
    script: Script, sleeps: Sleeps, clock: Clock, private_key_pem: str
) -> None:
    clock.now = EXPIRES_AT - 3600
    script.on("POST", TOKEN_PATH, minted("ghs_revoked"), minted("ghs_new"))
    refused = json_response(401, {"message": "Bad credentials"})
    script.on("GET", PR, refused, json_response(200, {"number": 7}))
    github = app_client(script, sleeps, clock, private_key_pem)
    assert (await github.pull_request("octo/app", 7, installation_id=42))["number"] == 7
    assert [auth_of(r) for r in script.requests if r.url.path == PR] == [
        "token ghs_revoked",
        "token ghs_new",
    ]


async def test_refused_app_credentials_are_permanent_and_secret_free(
    script: Script, sleeps: Sleeps, clock: Clock, private_key_pem: str
) -> None:
    script.on(
        "POST", TOKEN_PATH, json_response(401, {"message": "A JSON web token could not be decoded"})
    )
    github = app_client(script, sleeps, clock, private_key_pem)
    with pytest.raises(PlatformPermanentError) as caught:
        await github.pull_request("octo/app", 7, installation_id=42)
    message = str(caught.value)
    assert "POST /app/installations/42/access_tokens" in message and "401" in message
    jwt_sent = auth_of(script.requests[0]).split(" ", 1)[1]
    assert jwt_sent not in message and "PRIVATE KEY" not in message
    assert PR not in script.paths()


def test_a_key_that_is_not_pem_is_a_config_error() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nSECRETBITS\n-----END RSA PRIVATE KEY-----"
    with pytest.raises(ConfigError, match="not a usable PEM private key") as caught:
        GitHubClient(app_id=APP_ID, private_key=key)
    assert "SECRETBITS" not in str(caught.value)


async def test_no_credential_reaches_the_logs(
    script: Script,
    sleeps: Sleeps,
    clock: Clock,
    private_key_pem: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock.now = EXPIRES_AT - 3600
    script.on("POST", TOKEN_PATH, minted("ghs_LOGSECRET"))
    script.on("GET", PR, json_response(502, {}), json_response(404, {"message": "Not Found"}))
    github = app_client(script, sleeps, clock, private_key_pem)
    with pytest.raises(PlatformPermanentError):
        await github.pull_request("octo/app", 7, installation_id=42)
    jwt_sent = auth_of(script.requests[0]).split(" ", 1)[1]
    assert "platform call retried" in caplog.text  # the logs did record the retry
    for secret in ("ghs_LOGSECRET", jwt_sent, private_key_pem.splitlines()[1]):
        assert secret not in caplog.text
