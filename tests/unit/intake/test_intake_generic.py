"""Generic sources: Standard Webhooks signatures, type and subject from the payload."""

from __future__ import annotations

import pytest

from taskyard.exceptions import ConfigError, VerificationError
from taskyard.intake import GenericAdapter, make_adapter
from taskyard.intake.base import Normalised
from tests.unit.intake.intake_cases import NOW, WHSEC

# Source: standard-webhooks/standard-webhooks libraries/python/tests/test_webhooks.py
# (test_sign_function, and the wrong signature of test_invalid_signature_raises_error).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_WRONG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="


def _headers(signature: str) -> dict[str, str]:
    return {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": signature,
    }


def test_standard_webhooks_vector() -> None:
    adapter = GenericAdapter("vendor")
    signed = adapter.sign(VECTOR_SECRET, VECTOR_BODY, VECTOR_TIMESTAMP, {"webhook-id": VECTOR_ID})
    assert signed.headers == {"content-type": "application/json", **_headers(VECTOR_SIGNATURE)}
    adapter.verify(_headers(VECTOR_SIGNATURE), VECTOR_BODY, [VECTOR_SECRET], VECTOR_TIMESTAMP)
    # The library also takes the key without its whsec_ prefix.
    adapter.verify(
        _headers(VECTOR_SIGNATURE), VECTOR_BODY, [VECTOR_SECRET[6:]], VECTOR_TIMESTAMP + 299
    )


def test_standard_webhooks_wrong_vector_is_refused() -> None:
    with pytest.raises(VerificationError) as caught:
        GenericAdapter("vendor").verify(
            _headers(VECTOR_WRONG), VECTOR_BODY, [VECTOR_SECRET], VECTOR_TIMESTAMP
        )
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize(
    "signatures",
    [
        # The list of the library's test_multi_sig_payload_is_valid around the valid one.
        ["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
         "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", VECTOR_SIGNATURE,
         "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="],
        ["nocomma", "v1,!!!not-base64", "v1,", VECTOR_SIGNATURE],
    ],
)  # fmt: skip
def test_any_matching_entry_of_the_signature_list_is_enough(signatures: list[str]) -> None:
    headers = _headers(" ".join(signatures))
    GenericAdapter("vendor").verify(headers, VECTOR_BODY, [VECTOR_SECRET], VECTOR_TIMESTAMP)


@pytest.mark.parametrize(
    "signature", ["nocomma", "v1,!!!", "v2," + VECTOR_SIGNATURE[3:], VECTOR_SIGNATURE.lower()]
)
def test_junk_signature_lists_are_bad_signatures(signature: str) -> None:
    with pytest.raises(VerificationError) as caught:
        GenericAdapter("vendor").verify(
            _headers(signature), VECTOR_BODY, [VECTOR_SECRET], VECTOR_TIMESTAMP
        )
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize("timestamp", ["1614265330.5", "-1", "soon", "1e9"])
def test_timestamps_must_be_unix_seconds(timestamp: str) -> None:
    headers = {**_headers(VECTOR_SIGNATURE), "webhook-timestamp": timestamp}
    with pytest.raises(VerificationError) as caught:
        GenericAdapter("vendor").verify(headers, VECTOR_BODY, [VECTOR_SECRET], VECTOR_TIMESTAMP)
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"type": "invoice.paid", "subject": "inv_1"}', ("billing:invoice.paid", "inv_1")),
        (b'{"data": {}}', ("billing:webhook", None)),
        (b'{"type": 3, "subject": 4}', ("billing:webhook", None)),
        (b'{"type": ""}', ("billing:webhook", None)),
    ],
)
def test_type_and_subject(body: bytes, expected: tuple[str, str | None]) -> None:
    adapter = make_adapter("generic:billing")
    signed = adapter.sign(WHSEC, body, NOW, {"webhook-id": "msg_1"})
    adapter.verify(signed.headers, signed.body, [WHSEC], NOW)
    normalised = adapter.normalise(signed.headers, adapter.parse(signed.headers, signed.body))
    assert normalised == Normalised(expected[0], "msg_1", expected[1], None)
    assert adapter.name == "billing"


def test_sign_makes_a_message_id() -> None:
    signed = GenericAdapter("vendor").sign(WHSEC, b"{}", NOW)
    assert signed.headers["webhook-id"].startswith("msg_")
    assert len(signed.headers["webhook-id"]) == 36
    assert GenericAdapter.signature_headers == {"webhook-signature"}


@pytest.mark.parametrize("secret", ["whsec_", "whsec_a"])
def test_an_unusable_secret_is_a_config_error(secret: str) -> None:
    with pytest.raises(ConfigError, match="vendor"):
        GenericAdapter("vendor").verify(
            _headers(VECTOR_SIGNATURE), VECTOR_BODY, [secret], VECTOR_TIMESTAMP
        )
