"""The webhook endpoint over HTTP, on SQLite and PostgreSQL: real payloads in, stored once."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.intake_harness import Harness, running_intake

REPO = Path(__file__).resolve().parents[2]
OCTOKIT = REPO / ".cache/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"


@pytest.fixture
async def intake(tmp_path: Path, store_url: str) -> AsyncIterator[Harness]:
    async with running_intake(tmp_path, store_url) as harness:
        yield harness


def shared_cases(shared: Path) -> list[tuple[str, Path, dict[str, str], str]]:
    """(source, file, platform headers, expected type) for every payload in shared/webhooks."""
    hooks = shared / "webhooks"
    cases = []
    for name, meta in json.loads((hooks / "github/index.json").read_text()).items():
        event = meta["x_github_event"]
        action = meta.get("action")
        expected = f"github:{event}.{action}" if action else f"github:{event}"
        cases.append(("github", hooks / "github" / name, {"x-github-event": event}, expected))
    for name, meta in json.loads((hooks / "sentry/index.json").read_text()).items():
        resource = meta["sentry_hook_resource"]
        cases.append(
            (
                "sentry",
                hooks / "sentry" / name,
                {"sentry-hook-resource": resource},
                f"sentry:{resource}.{meta['action']}",
            )
        )
    cases += [
        ("linear", hooks / "linear/issue.create.json", {}, "linear:Issue.create"),
        ("linear", hooks / "linear/issue.update.state_change.json", {}, "linear:Issue.update"),
        ("linear", hooks / "linear/comment.create.sdk-test.json", {}, "linear:Comment.create"),
        ("slack", hooks / "slack/url_verification.json", {}, "slack:url_verification"),
        ("discord", hooks / "discord/ping.type1.json", {}, "discord:ping"),
        (
            "discord",
            hooks / "discord/application_command.type2.json",
            {},
            "discord:application_command",
        ),
    ]
    return cases


async def test_every_shared_payload_is_accepted_stored_and_queued_once(
    intake: Harness, shared_dir: Path
) -> None:
    cases = shared_cases(shared_dir)
    assert len(cases) >= 30
    for source, path, headers, expected_type in cases:
        before = intake.count()
        response, sent, sent_headers = await intake.deliver(source, path.read_bytes(), headers)
        assert response.status_code in (200, 202), (path.name, response.text)
        assert intake.count() == before + 1, path.name
        stored = intake.store.list_events(_filter(source, limit=1))[0]
        assert stored.type == expected_type, path.name
        assert stored.body == sent, path.name
        assert not {
            "x-hub-signature-256",
            "linear-signature",
            "x-slack-signature",
            "sentry-hook-signature",
            "x-signature-ed25519",
        } & set(stored.headers)
        again = await intake.post(source, sent, sent_headers)
        assert again.status_code == 200, (path.name, again.text)
        if source not in ("discord", "slack"):
            assert again.json() == {"event_id": stored.id, "duplicate": True}
        assert intake.count() == before + 1, f"{path.name} stored twice"
    queued = intake.store.events_to_dispatch(1000)
    assert len(queued) == len(cases) == len({d.event_id for d in queued})


def _filter(source: str, limit: int) -> Any:
    from taskyard.store import EventFilter

    return EventFilter(source=source, limit=limit)


async def test_slack_challenge_and_discord_interaction_answers(
    intake: Harness, shared_dir: Path
) -> None:
    hooks = shared_dir / "webhooks"
    response, _, _ = await intake.deliver(
        "slack", (hooks / "slack/url_verification.json").read_bytes()
    )
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    response, _, _ = await intake.deliver(
        "discord", (hooks / "discord/ping.type1.json").read_bytes()
    )
    assert (response.status_code, response.json()) == (200, {"type": 1})
    command = (hooks / "discord/application_command.type2.json").read_bytes()
    response, _, _ = await intake.deliver("discord", command)
    assert (response.status_code, response.json()) == (200, {"type": 5})
    component = json.dumps(
        {
            "id": "99",
            "type": 3,
            "token": "t",
            "version": 1,
            "data": {"custom_id": "approve", "component_type": 2},
        }
    ).encode()
    response, _, _ = await intake.deliver("discord", component)
    assert (response.status_code, response.json()) == (200, {"type": 6})
    assert intake.store.get_event(intake.store.list_events(_filter("discord", 1))[0].id).type == (
        "discord:message_component"
    )


async def test_slack_event_interaction_and_slash_command(intake: Harness) -> None:
    message = json.dumps(
        {
            "token": "x",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": "Ev0001",
            "event_time": int(time.time()),
            "event": {
                "type": "message",
                "channel": "C0BUGS",
                "channel_type": "channel",
                "user": "U123",
                "text": "the login page is broken",
                "ts": "1.2",
            },
        }
    ).encode()
    response, _, _ = await intake.deliver("slack", message)
    assert response.status_code == 202
    assert intake.store.get_event(response.json()["event_id"]).type == "slack:message.channels"
    interaction = "payload=" + _quote(
        json.dumps(
            {
                "type": "block_actions",
                "trigger_id": "13345224609.738474920.8088930838d88f008e0",
                "user": {"id": "U123"},
                "channel": {"id": "C0BUGS"},
                "actions": [{"action_id": "ok"}],
            }
        )
    )
    response, _, _ = await intake.deliver("slack", interaction.encode())
    assert response.status_code == 200, response.text
    assert intake.store.get_event(response.json()["event_id"]).type == (
        "slack:interaction.block_actions"
    )
    command = (
        "token=x&team_id=T1&channel_id=C0BUGS&user_id=U123&command=%2Ftaskyard"
        "&text=triage&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    response, _, _ = await intake.deliver("slack", command.encode())
    assert response.status_code == 200, response.text
    assert intake.store.get_event(response.json()["event_id"]).type == (
        "slack:slash_command.taskyard"
    )


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


async def test_generic_standard_webhooks(intake: Harness) -> None:
    body = json.dumps(
        {"type": "invoice.paid", "timestamp": "2026-11-23T10:00:00Z", "data": {"id": "inv_1"}}
    ).encode()
    response, sent, headers = await intake.deliver("generic:billing", body)
    assert response.status_code == 202, response.text
    event = intake.store.get_event(response.json()["event_id"])
    assert (event.source, event.type, event.delivery_id) == (
        "billing",
        "billing:invoice.paid",
        headers["webhook-id"],
    )
    assert (await intake.post("generic:billing", sent, headers)).json()["duplicate"] is True


def _forge(case: str, source: str, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict]:
    sig = {
        "github": "x-hub-signature-256",
        "linear": "linear-signature",
        "slack": "x-slack-signature",
        "sentry": "sentry-hook-signature",
        "discord": "x-signature-ed25519",
        "generic:billing": "webhook-signature",
    }[source]
    headers = dict(headers)
    original = body
    if case == "missing header":
        del headers[sig]
    elif case == "forged signature":
        value = headers[sig]
        headers[sig] = value[:-4] + ("0000" if not value.endswith("0000") else "1111")
    elif case == "one changed byte":
        index = body.index(b"e")
        body = body[:index] + b"E" + body[index + 1 :]
    elif case == "re-serialised json":
        body = json.dumps(json.loads(body), separators=(",", ":")).encode()
        assert body != original, "re-serialising must change the bytes"
    return body, headers


REFUSALS = [
    "missing header",
    "forged signature",
    "one changed byte",
    "re-serialised json",
    "wrong secret",
]
SOURCES = ["github", "linear", "slack", "sentry", "discord", "generic:billing"]


@pytest.mark.parametrize("case", REFUSALS)
async def test_bad_deliveries_are_refused_and_not_stored(
    intake: Harness, shared_dir: Path, case: str
) -> None:
    bodies = {
        "github": ("github/issues.opened.json", {"x-github-event": "issues"}),
        "linear": ("linear/issue.create.json", {}),
        "slack": ("slack/url_verification.json", {}),
        "sentry": ("sentry/example-app.issue.created.json", {"sentry-hook-resource": "issue"}),
        "discord": ("discord/application_command.type2.json", {}),
        "generic:billing": ("linear/issue.create.json", {}),
    }
    for source in SOURCES:
        name, extra = bodies[source]
        raw = (shared_dir / "webhooks" / name).read_bytes()
        body, headers = intake.signed(source, raw, extra)
        if case == "wrong secret":
            body, headers = _signed_with_wrong_secret(source, raw, extra)
        else:
            body, headers = _forge(case, source, body, headers)
        response = await intake.post(source, body, headers)
        assert response.status_code == 401, (source, case, response.text)
        assert response.json()["reason"] in ("missing_signature", "bad_signature"), source
        assert intake.metric(source.split(":")[-1], response.json()["reason"]) >= 1
    assert intake.count() == 0


def _signed_with_wrong_secret(source: str, raw: bytes, extra: dict) -> tuple[bytes, dict]:
    from taskyard.intake import make_adapter

    wrong = {"discord": "11" * 32, "generic:billing": "whsec_" + "d3Jvbmd3cm9uZ3dyb25nd3Jvbmc="}
    signed = make_adapter(source).sign(wrong.get(source, "not-the-secret"), raw, time.time(), extra)
    return signed.body, signed.headers


@pytest.mark.parametrize("source", ["linear", "slack", "generic:billing"])
async def test_stale_timestamp_is_refused(intake: Harness, shared_dir: Path, source: str) -> None:
    raw = (shared_dir / "webhooks/linear/issue.create.json").read_bytes()
    if source == "slack":
        raw = (shared_dir / "webhooks/slack/url_verification.json").read_bytes()
    response, _, _ = await intake.deliver(source, raw, now=time.time() - 3600)
    assert response.status_code == 401
    assert response.json()["reason"] == "stale_timestamp"
    assert intake.count() == 0


async def test_rotation_accepts_every_configured_secret(tmp_path: Path, store_url: str) -> None:
    sources = {"github": {"secrets": ["new-secret", "gh-secret-1"]}}
    async with running_intake(tmp_path, store_url, sources=sources) as harness:
        response, _, _ = await harness.deliver(
            "github", b'{"zen": "hi"}', {"x-github-event": "ping"}
        )
        assert response.status_code == 202


async def test_malformed_unknown_disabled_and_method(intake: Harness) -> None:
    response, _, _ = await intake.deliver("github", b"this is not json", {"x-github-event": "push"})
    assert (response.status_code, response.json()["reason"]) == (400, "malformed")
    response, _, _ = await intake.deliver("github", b"[1, 2]", {"x-github-event": "push"})
    assert response.status_code == 400
    assert (await intake.client.post("/webhooks/gitlab", content=b"{}")).status_code == 404
    assert (await intake.client.post("/webhooks/generic/nope", content=b"{}")).status_code == 404
    assert (await intake.client.get("/webhooks/github")).status_code == 405
    assert intake.count() == 0
    assert intake.metric("github", "malformed") == 2


async def test_source_without_secret_is_disabled(tmp_path: Path, store_url: str) -> None:
    async with running_intake(tmp_path, store_url, sources={"sentry": {"secrets": []}}) as h:
        response, _, _ = await h.deliver("sentry", b"{}", {"sentry-hook-resource": "issue"})
        assert response.status_code == 404
        assert h.count() == 0


async def test_body_over_the_limit_is_413(tmp_path: Path, store_url: str) -> None:
    async with running_intake(tmp_path, store_url, intake={"max_body_bytes": 1000}) as h:
        big = json.dumps({"zen": "x" * 2000}).encode()
        response, _, _ = await h.deliver("github", big, {"x-github-event": "ping"})
        assert response.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 500

        _, headers = h.signed("github", big, {"x-github-event": "ping"})
        headers.pop("content-length", None)
        response = await h.client.post("/webhooks/github", content=chunks(), headers=headers)
        assert response.status_code == 413
        assert h.count() == 0


async def test_rate_limit_answers_429_with_retry_after(tmp_path: Path, store_url: str) -> None:
    async with running_intake(
        tmp_path, store_url, sources={"github": {"rate_limit_per_hour": 2}}
    ) as h:
        codes = []
        for n in range(3):
            body = json.dumps({"zen": f"n{n}"}).encode()
            response, _, _ = await h.deliver("github", body, {"x-github-event": "ping"})
            codes.append(response.status_code)
        assert codes == [202, 202, 429]
        assert int(response.headers["retry-after"]) >= 1
        assert h.count() == 2
        assert h.metric("github", "rate_limited") == 1


async def test_ip_allowlist(tmp_path: Path, store_url: str) -> None:
    async with running_intake(
        tmp_path,
        store_url,
        sources={
            "github": {"allow_ips": ["192.30.252.0/22"]},
            "sentry": {"allow_ips": ["127.0.0.0/8"]},
        },
    ) as h:
        response, _, _ = await h.deliver("github", b'{"zen": "a"}', {"x-github-event": "ping"})
        assert response.status_code == 403
        response, _, _ = await h.deliver(
            "sentry", b'{"action": "created", "data": {}}', {"sentry-hook-resource": "issue"}
        )
        assert response.status_code == 202
        assert h.count() == 1


async def test_content_hash_dedup_without_delivery_id(intake: Harness) -> None:
    body = b'{"zen": "no delivery id"}'
    _, headers = intake.signed("github", body, {"x-github-event": "ping"})
    headers.pop("x-github-delivery")
    first = await intake.post("github", body, headers)
    second = await intake.post("github", body, headers)
    assert first.status_code == 202
    assert second.json() == {"event_id": first.json()["event_id"], "duplicate": True}


async def test_concurrent_duplicates_store_once(intake: Harness) -> None:
    deliveries = [str(uuid.uuid4()) for _ in range(20)]
    signed = [
        intake.signed(
            "github",
            b'{"zen": "%s"}' % d.encode(),
            {"x-github-event": "ping", "x-github-delivery": d},
        )
        for d in deliveries
        for _ in range(5)
    ]
    responses = await asyncio.gather(*(intake.post("github", b, h) for b, h in signed))
    assert sorted(r.status_code for r in responses) == [200] * 80 + [202] * 20
    assert intake.count() == 20
    firsts = {r.json()["event_id"] for r in responses}
    assert len(firsts) == 20


async def test_health_ready_and_metrics(intake: Harness) -> None:
    await intake.deliver("github", b'{"zen": "m"}', {"x-github-event": "ping"})
    assert (await intake.client.get("/healthz")).json() == {"ok": True}
    assert (await intake.client.get("/readyz")).json() == {"ready": True}
    text = (await intake.client.get("/metrics")).text
    assert 'taskyard_webhooks_received_total{outcome="accepted",source="github"} 1.0' in text
    assert 'taskyard_queue_depth{state="received"} 1.0' in text
    assert re.search(r'taskyard_intake_latency_seconds_count\{source="github"\} 1\.0', text)


@pytest.mark.postgres
async def test_store_down_answers_503_and_not_ready(tmp_path: Path, pg_url: str) -> None:
    async with running_intake(tmp_path, pg_url) as h:
        response, _, _ = await h.deliver("github", b'{"zen": "up"}', {"x-github-event": "ping"})
        assert response.status_code == 202
        database = pg_url.rsplit("/", 1)[1]
        _psql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        _psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname='{database}'")
        try:
            response, _, _ = await h.deliver(
                "github", b'{"zen": "down"}', {"x-github-event": "ping"}
            )
            assert response.status_code == 503, response.text
            assert response.json()["reason"] == "store_unavailable"
            assert (await h.client.get("/readyz")).status_code == 503
        finally:
            _psql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        for _ in range(60):
            if (await h.client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.5)
        response, _, _ = await h.deliver("github", b'{"zen": "back"}', {"x-github-event": "ping"})
        assert response.status_code == 202


def _psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", sql],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def octokit_examples() -> list[dict[str, Any]]:
    if not OCTOKIT.exists():
        subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(REPO / ".cache/npm"),
                "@octokit/webhooks-examples@7",
            ],
            check=True,
        )
    return list(json.loads(OCTOKIT.read_text()))


async def test_every_octokit_example_is_accepted_once(
    intake: Harness, octokit_examples: list[dict[str, Any]]
) -> None:
    sent_all = []
    seen: set[bytes] = set()
    for group in octokit_examples:
        for example in group["examples"]:
            body = json.dumps(example).encode()
            if body in seen:  # a few examples repeat one body: a replay, answered duplicate
                continue
            seen.add(body)
            response, sent, headers = await intake.deliver(
                "github", body, {"x-github-event": group["name"]}
            )
            assert response.status_code == 202, (group["name"], response.text)
            action = example.get("action")
            expected = f"github:{group['name']}" + (f".{action}" if action else "")
            event = intake.store.get_event(response.json()["event_id"])
            assert (event.type, event.body) == (expected, sent)
            sent_all.append((sent, headers, event.id))
    assert len(sent_all) >= 300
    for sent, headers, event_id in sent_all[::7]:
        again = await intake.post("github", sent, headers)
        assert again.json() == {"event_id": event_id, "duplicate": True}
    assert intake.count() == len(sent_all)


@pytest.mark.parametrize(
    ("section", "name", "secret"),
    [("sources", "discord", "not-hex"), ("generic", "billing", "whsec_!!notbase64!!")],
)
async def test_unusable_secrets_are_refused_at_startup(
    tmp_path: Path, section: str, name: str, secret: str
) -> None:
    from taskyard.exceptions import ConfigError

    with pytest.raises(ConfigError):
        async with running_intake(
            tmp_path, f"sqlite:///{tmp_path}/t.db", **{section: {name: {"secrets": [secret]}}}
        ):
            pass
