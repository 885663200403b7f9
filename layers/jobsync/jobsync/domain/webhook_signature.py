"""Standard Webhooks signatures, as Replicate sends them.

The signed content is `{webhook-id}.{webhook-timestamp}.` followed by the raw
body bytes: verify before parsing, since re-serialised JSON would not match.
Pure: the clock comes in as `now` so tests and replays are deterministic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

# Unix seconds, ASCII digits only (`\d` would take other scripts' digits too);
# the length cap keeps int() away from absurd inputs.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class InvalidSignature(Exception):
    """The request is not proven to come from the provider; the message says why."""


class InvalidWebhookSecret(InvalidSignature):
    """Our configured secret is unusable: a setup error, not a forged request."""


def _b64decode(text: str) -> bytes | None:
    # Senders and secrets are not always padded; add what is missing.
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _secret_key(secret: str) -> bytes:
    raw = secret.strip()
    raw = raw[len(SECRET_PREFIX) :] if raw.startswith(SECRET_PREFIX) else raw
    key = _b64decode(raw)
    if not key:
        raise InvalidWebhookSecret("webhook secret is not `whsec_` followed by non-empty base64")
    return key


def _header(headers: Mapping[str, str], name: str) -> str:
    # HTTP header names are case-insensitive; API Gateway REST keeps the sender's case.
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not value:
        raise InvalidSignature(f"missing {name} header")
    return value


def _check_timestamp(timestamp: str, now: float, tolerance_seconds: int) -> None:
    if not _TIMESTAMP.fullmatch(timestamp):
        raise InvalidSignature(f"{TIMESTAMP_HEADER} is not an integer of Unix seconds: {timestamp[:40]!r}")
    drift = int(timestamp) - now
    # Both directions: an old one may be a replay, a future one a pre-signed forgery.
    if drift < -tolerance_seconds:
        raise InvalidSignature(f"stale webhook: timestamp is {-drift:.0f} s old (tolerance {tolerance_seconds} s)")
    if drift > tolerance_seconds:
        raise InvalidSignature(f"webhook timestamp is {drift:.0f} s in the future (tolerance {tolerance_seconds} s)")


def _digest(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> bytes:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def _offered_v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1,<base64>` entries; other versions and garbage are skipped, not fatal."""
    offered = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        decoded = _b64decode(encoded) if version == SIGNATURE_VERSION else None
        if decoded:
            offered.append(decoded)
    return offered


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """The webhook-id of a correctly signed, fresh webhook; raises InvalidSignature otherwise."""
    key = _secret_key(secret)
    webhook_id = _header(headers, ID_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signatures = _header(headers, SIGNATURE_HEADER)
    _check_timestamp(timestamp, time.time() if now is None else now, tolerance_seconds)
    expected = _digest(key, webhook_id, timestamp, body)
    # Check every entry in constant time: any one may match (key rotation).
    if not any(hmac.compare_digest(expected, offered) for offered in _offered_v1_signatures(signatures)):
        raise InvalidSignature("no matching v1 signature in webhook-signature")
    return webhook_id


def sign_webhook(secret: str, webhook_id: str, timestamp: int | str, body: bytes | str) -> str:
    """The `webhook-signature` value (`v1,<base64>`) a sender would attach to `body`."""
    raw = body.encode() if isinstance(body, str) else body
    digest = _digest(_secret_key(secret), webhook_id, str(timestamp), raw)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"
