"""GitHub: the real payloads, published signature vectors, and properties over any body."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskyard.exceptions import MalformedPayload, VerificationError
from taskyard.intake import GitHubAdapter
from tests.unit.intake.intake_cases import NOW, load_index

REPO = "Codertocat/Hello-World"
# file → (normalised type, subject); every delivery's sender is Codertocat.
EXPECTED = {
    "issues.opened.json": ("github:issues.opened", f"{REPO}#1"),
    "issues.labeled.json": ("github:issues.labeled", f"{REPO}#1"),
    "issue_comment.created.json": ("github:issue_comment.created", f"{REPO}#1"),
    "pull_request.opened.json": ("github:pull_request.opened", f"{REPO}#2"),
    "pull_request.synchronize.json": ("github:pull_request.synchronize", f"{REPO}#2"),
    "pull_request.closed.json": ("github:pull_request.closed", f"{REPO}#2"),
    "pull_request.ready_for_review.json": ("github:pull_request.ready_for_review", f"{REPO}#2"),
    "pull_request.converted_to_draft.json": (
        "github:pull_request.converted_to_draft",
        f"{REPO}#2",
    ),
    "pull_request_review.submitted.json": ("github:pull_request_review.submitted", f"{REPO}#2"),
    "pull_request_review_comment.created.json": (
        "github:pull_request_review_comment.created",
        f"{REPO}#2",
    ),
    "push.json": ("github:push", REPO),
    "check_run.completed.json": ("github:check_run.completed", REPO),
    "installation.created.json": ("github:installation.created", "Codertocat"),
    "ping.json": ("github:ping", "Octocoders/Hello-World"),
}


def _verify(signature: str, body: bytes, secrets: list[str]) -> None:
    GitHubAdapter().verify({"x-hub-signature-256": signature}, body, secrets, NOW)


def test_every_corpus_file_is_expected(webhooks: Path) -> None:
    index = load_index(webhooks / "github")
    assert set(index) == set(EXPECTED)
    for name, meta in index.items():
        action = f".{meta['action']}" if meta["action"] else ""
        assert EXPECTED[name][0] == f"github:{meta['event']}{action}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_payload_signed_verifies_and_normalises(webhooks: Path, name: str) -> None:
    event = load_index(webhooks / "github")[name]["x_github_event"]
    adapter = GitHubAdapter()
    given = {"x-github-event": event, "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    signed = adapter.sign("secret", (webhooks / "github" / name).read_bytes(), NOW, given)
    adapter.verify(signed.headers, signed.body, ["secret"], NOW)
    normalised = adapter.normalise(signed.headers, adapter.parse(signed.headers, signed.body))
    assert (normalised.type, normalised.subject) == EXPECTED[name]
    assert normalised.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert normalised.actor == "Codertocat"


def test_sign_sets_the_headers_github_sends() -> None:
    signed = GitHubAdapter().sign("s", b"{}", NOW)
    assert signed.headers["x-github-event"] == "ping"
    assert signed.headers["content-type"] == "application/json"
    assert signed.headers["user-agent"] == "GitHub-Hookshot/taskyard"
    assert len(signed.headers["x-github-delivery"]) == 36
    assert signed.headers["x-hub-signature-256"].startswith("sha256=")
    assert GitHubAdapter.signature_headers == {"x-hub-signature-256", "x-hub-signature"}


# Source: GitHub docs, "Validating webhook deliveries" → "Testing the webhook payload
# validation" (github/docs content/webhooks/using-webhooks/validating-webhook-deliveries.md).
def test_github_docs_vector() -> None:
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    signed = GitHubAdapter().sign("It's a Secret to Everybody", b"Hello, World!", NOW)
    assert signed.headers["x-hub-signature-256"] == header
    _verify(header, b"Hello, World!", ["It's a Secret to Everybody"])


# Source: octokit/webhooks-methods.js test/sign.test.ts (JSON.stringify({foo: "bar"})) and
# test/verify.test.ts (the same object with 2-space indent and a final newline, as GitHub
# sends it; and the payloads of octokit/webhooks.js issue #71 with escape sequences).
OCTOKIT_VECTORS = [
    (
        "mysecret",
        b'{"foo":"bar"}',
        "4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3",
    ),
    (
        "mysecret",
        b'{\n  "foo": "bar"\n}\n',
        "e3eccac34c43c7dc1cbb905488b1b81347fcc700a7b025697a9d07862256023f",
    ),
    (
        "development",
        (
            '{\n  "foo": "Foo\\n\\u001B[34mbar: ♥♥♥♥♥♥♥♥\\nthis-is-lost\\u001B[0m\\u001B[2K"\n}\n'
        ).encode(),
        "9dacf9003316b09be07df56d86a2d0d6872e42a1e6c72c3bad9ff915a7c5603e",
    ),
    (
        "development",
        b'{\n  "foo": "\\\\u001b"\n}\n',
        "87316067e2011fae39998b18c46a14d83b3e7c3ffdd88fb2ee5afb7d11288e60",
    ),
]


@pytest.mark.parametrize(("secret", "body", "digest"), OCTOKIT_VECTORS)
def test_octokit_vectors(secret: str, body: bytes, digest: str) -> None:
    assert GitHubAdapter().sign(secret, body, NOW).headers["x-hub-signature-256"] == (
        f"sha256={digest}"
    )
    _verify(f"sha256={digest}", body, ["wrong", secret])


def test_octokit_vectors_are_bound_to_their_exact_bytes() -> None:
    # The compact and the indented serialisation of {"foo": "bar"} must not share a signature.
    with pytest.raises(VerificationError, match="does not match"):
        _verify("sha256=" + OCTOKIT_VECTORS[1][2], OCTOKIT_VECTORS[0][1], ["mysecret"])


@pytest.mark.parametrize(
    "header",
    [
        "4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3",  # no prefix
        "sha1=4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3",
        "sha256=xxxccac34c43c7dc1cbb905488b1b81347fcc700a7b025697a9d07862256023f",
        "sha256=foo",
        "sha256=ünïcödé",
    ],
)
def test_malformed_signature_headers_are_bad_signatures(header: str) -> None:
    with pytest.raises(VerificationError) as caught:
        _verify(header, b'{"foo":"bar"}', ["mysecret"])
    assert caught.value.reason == "bad_signature"


def test_missing_event_header_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="x-github-event"):
        GitHubAdapter().normalise({}, {"action": "opened"})


def test_subject_falls_back_to_the_organisation() -> None:
    payload = {"organization": {"login": "octo-org"}, "sender": {"login": "hubot"}}
    normalised = GitHubAdapter().normalise({"x-github-event": "organization"}, payload)
    assert (normalised.type, normalised.subject, normalised.delivery_id) == (
        "github:organization",
        "octo-org",
        None,
    )


@given(body=st.binary(max_size=4096), secret=st.text(min_size=1, max_size=64))
def test_any_signed_body_verifies(body: bytes, secret: str) -> None:
    adapter = GitHubAdapter()
    signed = adapter.sign(secret, body, NOW)
    adapter.verify(signed.headers, signed.body, [secret], NOW)


@given(body=st.binary(min_size=1, max_size=4096), data=st.data())
def test_any_single_byte_change_fails(body: bytes, data: st.DataObject) -> None:
    adapter = GitHubAdapter()
    signed = adapter.sign("secret", body, NOW)
    at = data.draw(st.integers(0, len(body) - 1))
    mask = data.draw(st.integers(1, 255))
    changed = body[:at] + bytes([body[at] ^ mask]) + body[at + 1 :]
    with pytest.raises(VerificationError) as caught:
        adapter.verify(signed.headers, changed, ["secret"], NOW)
    assert caught.value.reason == "bad_signature"
