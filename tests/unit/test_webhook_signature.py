"""Standard Webhooks verification, checked against the reference `standardwebhooks` package."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from jobsync.domain.webhook_signature import (
    InvalidSignature,
    InvalidWebhookSecret,
    sign_webhook,
    verify_webhook,
)

SECRET = "whsec_" + base64.b64encode(b"jobsync-test-secret-key-32-bytes").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"some-other-secret-key-of-32-byte").decode()
NOW = 1_726_000_000
MSG_ID = "msg_2mQfV7r0YkQZ8bq9"
# Non-ASCII and deliberate spacing: the raw bytes are signed, not re-serialised JSON.
BODY = json.dumps({"id": "abc123", "status": "succeeded", "logs": "Schritt 3/3 ✓"}, ensure_ascii=False).encode()


def official_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return Webhook(secret).sign(msg_id, moment, body.decode())


def signed_headers(
    secret: str = SECRET, msg_id: str = MSG_ID, timestamp: int = NOW, body: bytes = BODY
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": official_signature(secret, msg_id, timestamp, body),
    }


def test_valid_signature_returns_the_webhook_id() -> None:
    assert verify_webhook(SECRET, signed_headers(), BODY, now=NOW) == MSG_ID


def test_header_names_are_case_insensitive() -> None:
    headers = {name.title(): value for name, value in signed_headers().items()}
    assert "Webhook-Signature" in headers
    assert verify_webhook(SECRET, headers, BODY, now=NOW) == MSG_ID


def test_secret_without_prefix_is_accepted() -> None:
    assert verify_webhook(SECRET.removeprefix("whsec_"), signed_headers(), BODY, now=NOW) == MSG_ID


def test_unpadded_secret_is_accepted() -> None:
    # 16 bytes encode with "==" padding; some dashboards show secrets without it.
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef").decode().rstrip("=")
    headers = signed_headers(secret=secret)
    assert verify_webhook(secret, headers, BODY, now=NOW) == MSG_ID


def test_tampered_body_is_rejected() -> None:
    tampered = BODY.replace(b"succeeded", b"failed")
    with pytest.raises(InvalidSignature, match="no matching"):
        verify_webhook(SECRET, signed_headers(), tampered, now=NOW)


def test_reserialised_body_is_rejected() -> None:
    # Same JSON value, different bytes: verification must use the raw body.
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert reserialised != BODY
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, signed_headers(), reserialised, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(InvalidSignature, match="no matching"):
        verify_webhook(OTHER_SECRET, signed_headers(), BODY, now=NOW)


def test_tampered_id_is_rejected() -> None:
    headers = signed_headers() | {"webhook-id": "msg_other"}
    with pytest.raises(InvalidSignature, match="no matching"):
        verify_webhook(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamp_more_than_300_seconds_off_is_rejected(offset: int) -> None:
    headers = signed_headers(timestamp=NOW + offset)
    with pytest.raises(InvalidSignature, match="stale|future"):
        verify_webhook(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_exactly_at_the_tolerance_is_accepted(offset: int) -> None:
    assert verify_webhook(SECRET, signed_headers(timestamp=NOW + offset), BODY, now=NOW) == MSG_ID


def test_tolerance_is_configurable() -> None:
    headers = signed_headers(timestamp=NOW - 60)
    with pytest.raises(InvalidSignature, match="stale"):
        verify_webhook(SECRET, headers, BODY, now=NOW, tolerance_seconds=30)


def test_default_clock_is_the_current_time() -> None:
    now = int(time.time())
    assert verify_webhook(SECRET, signed_headers(timestamp=now), BODY) == MSG_ID
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, signed_headers(timestamp=now - 3600), BODY)


@pytest.mark.parametrize("timestamp", ["", "abc", "1726000000.5", "-1726000000", " 1726000000", "١٧٢٦"])
def test_non_integer_timestamp_is_rejected(timestamp: str) -> None:
    headers = signed_headers() | {"webhook-timestamp": timestamp}
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(missing: str) -> None:
    headers = signed_headers()
    del headers[missing]
    with pytest.raises(InvalidSignature, match=f"missing {missing}"):
        verify_webhook(SECRET, headers, BODY, now=NOW)


def test_no_headers_at_all_is_rejected() -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        verify_webhook(SECRET, {}, BODY, now=NOW)


def test_any_of_several_signatures_may_match() -> None:
    good = official_signature(SECRET, MSG_ID, NOW, BODY)
    wrong = official_signature(OTHER_SECRET, MSG_ID, NOW, BODY)
    headers = signed_headers() | {"webhook-signature": f"{wrong} {good}"}
    assert verify_webhook(SECRET, headers, BODY, now=NOW) == MSG_ID


def test_entries_of_other_versions_are_ignored() -> None:
    # The right digest under a "v2" label must not count: only v1 is HMAC-SHA256.
    digest = official_signature(SECRET, MSG_ID, NOW, BODY).split(",", 1)[1]
    headers = signed_headers() | {"webhook-signature": f"v2,{digest}"}
    with pytest.raises(InvalidSignature, match="no matching"):
        verify_webhook(SECRET, headers, BODY, now=NOW)
    headers["webhook-signature"] = f"v2,{digest} v1,{digest}"
    assert verify_webhook(SECRET, headers, BODY, now=NOW) == MSG_ID


def test_garbage_signature_entries_are_skipped_not_fatal() -> None:
    good = official_signature(SECRET, MSG_ID, NOW, BODY)
    headers = signed_headers() | {"webhook-signature": f"nonsense v1,!!notbase64!! v1, {good}"}
    assert verify_webhook(SECRET, headers, BODY, now=NOW) == MSG_ID
    headers["webhook-signature"] = "nonsense v1,!!notbase64!! v1,"
    with pytest.raises(InvalidSignature, match="no matching"):
        verify_webhook(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_***not base64***", "", "whsec_ü"])
def test_bad_secret_format_is_reported(secret: str) -> None:
    with pytest.raises(InvalidWebhookSecret, match="secret"):
        verify_webhook(secret, signed_headers(), BODY, now=NOW)
    assert issubclass(InvalidWebhookSecret, InvalidSignature)


def test_sign_webhook_matches_the_official_signer() -> None:
    assert sign_webhook(SECRET, MSG_ID, NOW, BODY) == official_signature(SECRET, MSG_ID, NOW, BODY)
    assert sign_webhook(SECRET, MSG_ID, str(NOW), BODY.decode()) == official_signature(SECRET, MSG_ID, NOW, BODY)


def test_sign_webhook_output_is_accepted_by_the_official_verifier() -> None:
    now = int(time.time())  # the official verifier only knows the real clock
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(now),
        "webhook-signature": sign_webhook(SECRET, MSG_ID, now, BODY),
    }
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)


def test_sign_then_verify_round_trip_with_our_own_functions() -> None:
    headers = {
        "webhook-id": "msg_roundtrip",
        "webhook-timestamp": str(NOW),
        "webhook-signature": sign_webhook(SECRET, "msg_roundtrip", NOW, b"{}"),
    }
    assert verify_webhook(SECRET, headers, b"{}", now=NOW) == "msg_roundtrip"
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, headers, b"{} ", now=NOW)
