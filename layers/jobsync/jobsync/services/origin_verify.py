"""Webhooks only through CloudFront: the secret header CloudFront adds to every request it forwards.

The per-IP rule on the webhook (AWS WAF) sits on the CloudFront distribution; the HTTP API's own URL has
none. So CloudFront adds `X-Jobsync-Origin-Verify: <secret>` to what it forwards to the API (template.yaml:
OriginVerifySecret, the http-api origin's OriginCustomHeaders), and a webhook without that value did not
come through CloudFront: it is refused with 403 before its signature is checked, and nothing changes.

Off when JOBSYNC_ORIGIN_VERIFY_SECRET_ARN is unset: the template sets it only where it creates the web ACL
(Condition WebhookRateLimitOn), and the local stack, whose gateway is the one way in, leaves it unset.

The secret is JSON: `{"current": "<what CloudFront sends>"}`, and during a rotation also `"previous"`.
Both are accepted, because CloudFront takes minutes to deploy a new value and a warm instance rereads the
secret only every few minutes (jobsync.secrets): neither side has to switch at the same instant.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import NoReturn

from jobsync.config import get_settings
from jobsync.domain.errors import Forbidden, JobsyncError
from jobsync.observability import count, logger

# Lowercase: the HTTP layer lowercases header names (HTTP/2 sends them so anyway).
HEADER = "x-jobsync-origin-verify"
# The keys of the secret's JSON (template.yaml's GenerateStringKey is CURRENT_KEY).
CURRENT_KEY = "current"
PREVIOUS_KEY = "previous"

_REFUSAL = (
    "webhooks are accepted only through jobsync's CloudFront distribution (the stack's "
    "WebhookUrlThroughCloudFront output), where the per-address limit applies"
)


class OriginCheckUnavailable(JobsyncError):
    """The origin-verify secret could not be read or has no usable value: the webhook cannot be checked."""

    code = "origin_check_unavailable"
    http_status = 503


def check_origin(headers: Mapping[str, str]) -> None:
    """Forbidden unless the request carries the value CloudFront adds (when the check is configured).

    Every accepted value is compared in constant time, whichever matches, so the answer's timing says
    nothing about how much of a guess was right.
    """
    secret_arn = get_settings().origin_verify_secret_arn
    if not secret_arn:
        return
    presented = headers.get(HEADER)
    if presented is None:
        _refuse("missing")
    given = presented.encode("utf-8", "surrogatepass")
    matches = [hmac.compare_digest(given, value) for value in _accepted(_secret(secret_arn))]
    if not any(matches):
        _refuse("wrong")


def _refuse(reason: str) -> NoReturn:
    count("WebhooksNotThroughCloudFront")
    logger.warning("webhook refused: it did not come through CloudFront", extra={"origin_header": reason})
    raise Forbidden(_REFUSAL)


def _secret(secret_arn: str) -> str:
    # Imported here, like the other secrets: an instance without the check never loads the client.
    from jobsync.secrets import SecretUnavailable, secret_string

    try:
        return secret_string(secret_arn)
    except SecretUnavailable as exc:
        logger.error("cannot check webhooks' origin", extra={"reason": str(exc)})
        raise OriginCheckUnavailable("the webhook's origin cannot be checked right now; retry later") from exc


@lru_cache(maxsize=4)
def _accepted(secret: str) -> tuple[bytes, ...]:
    """The values the secret accepts (parsed once per secret string: the string itself is cached upstream)."""
    try:
        document = json.loads(secret)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get(CURRENT_KEY), str) or not document[CURRENT_KEY]:
        logger.error("the origin-verify secret is not JSON with a non-empty 'current' string")
        raise OriginCheckUnavailable("the webhook's origin cannot be checked: its secret is malformed")
    values = [document[CURRENT_KEY]]
    previous = document.get(PREVIOUS_KEY)
    if isinstance(previous, str) and previous:
        values.append(previous)
    return tuple(value.encode("utf-8") for value in values)
