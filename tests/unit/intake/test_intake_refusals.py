"""Every source refuses what it must, with the right reason, and accepts rotated secrets."""

from __future__ import annotations

import json

import pytest

from taskyard.exceptions import VerificationError
from taskyard.intake.base import Signed, SourceAdapter
from tests.unit.intake.intake_cases import NOW, Case


def _refused(
    case: Case,
    signed: Signed,
    reason: str,
    secrets: list[str] | None = None,
    adapter: SourceAdapter | None = None,
) -> None:
    with pytest.raises(VerificationError) as caught:
        case.run(signed, secrets, adapter=adapter)
    assert caught.value.reason == reason
    assert caught.value.status == 401
    message = str(caught.value)
    assert message
    for secret in (case.secret, case.verify_secret, case.other_secret):
        assert secret not in message
    assert signed.body.decode("utf-8", "replace")[:40] not in message


def test_signed_delivery_is_accepted(case: Case) -> None:
    assert case.run(case.sign()).type.startswith(case.source.removeprefix("generic:") + ":")


def test_forged_signature_is_refused(case: Case) -> None:
    signed = case.sign()
    _refused(case, Signed({**signed.headers, **case.forged}, signed.body), "bad_signature")


def test_wrong_secret_is_refused(case: Case) -> None:
    _refused(case, case.sign(secret=case.other_secret), "bad_signature")


@pytest.mark.parametrize("blank", [False, True], ids=["absent", "empty"])
def test_missing_signature_header_is_refused(case: Case, blank: bool) -> None:
    signed = case.sign()
    for header in case.required_headers:
        headers = {k: v for k, v in signed.headers.items() if k != header}
        if blank:
            headers[header] = ""
        _refused(case, Signed(headers, signed.body), "missing_signature")


def test_one_changed_byte_is_refused(case: Case) -> None:
    signed = case.sign()
    at = len(signed.body) // 2
    flipped = signed.body[:at] + bytes([signed.body[at] ^ 0x01]) + signed.body[at + 1 :]
    _refused(case, Signed(signed.headers, flipped), "bad_signature")


@pytest.mark.parametrize("spacing", [{"indent": 3}, {"separators": (",", ":")}], ids=str)
def test_reserialised_json_is_refused(case: Case, spacing: dict[str, object]) -> None:
    signed = case.sign()
    reserialised = json.dumps(json.loads(signed.body), **spacing).encode()  # type: ignore[arg-type]
    assert reserialised != signed.body
    _refused(case, Signed(signed.headers, reserialised), "bad_signature")


def test_second_secret_is_accepted_for_rotation(case: Case) -> None:
    rotated = case.sign(secret=case.other_secret)
    both = [case.verify_secret, case.other_verify_secret]
    assert case.run(rotated, both) == case.run(rotated, list(reversed(both)))


def test_no_configured_secret_is_refused(case: Case) -> None:
    signed = case.sign()
    with pytest.raises(VerificationError) as caught:
        case.adapter().verify(signed.headers, signed.body, [], NOW)
    assert caught.value.reason == "bad_signature"


def test_stale_delivery_is_refused(case: Case) -> None:
    if not case.timestamped:
        pytest.skip(f"{case.source} signatures cover no send time")
    window = case.window or 300.0
    adapter = case.adapter(None if case.window else window)
    case.run(case.sign(at=NOW - window + 1), adapter=adapter)
    _refused(case, case.sign(at=NOW - window - 1), "stale_timestamp", adapter=adapter)
    _refused(case, case.sign(at=NOW + window + 1), "stale_timestamp", adapter=adapter)


def test_without_a_platform_window_old_deliveries_verify(case: Case) -> None:
    if case.window is not None:
        pytest.skip(f"{case.source} has a replay window")
    assert case.run(case.sign(at=NOW - 30 * 86_400)).type


def test_configured_window_replaces_the_platform_one(case: Case) -> None:
    if case.window is None:
        pytest.skip("no platform window to widen")
    old = case.sign(at=NOW - case.window - 100)
    case.run(old, adapter=case.adapter(max_skew_seconds=case.window + 200))
    _refused(case, case.sign(at=NOW - 11), "stale_timestamp", adapter=case.adapter(10))
