"""Replicate's webhooks: verify the signature on the raw bytes, claim the webhook-id, apply."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.domain import identifiers
from jobsync.domain.errors import InvalidInput, JobsyncError, Unauthorized
from jobsync.domain.job import Job, JobObservation
from jobsync.domain.webhook_signature import InvalidSignature, InvalidWebhookSecret, verify_webhook
from jobsync.observability import count, logger
from jobsync.providers.registry import provider_client
from jobsync.services.job_updates import record_observation
from jobsync.services.origin_verify import check_origin

PROVIDER = "replicate"


@dataclass(frozen=True)
class WebhookReceipt:
    duplicate: bool
    job: Job | None


# A claim older than this belongs to an invocation that died between claim and apply (the webhook
# function's timeout is 29 s): the provider's retry may take it over.
CLAIM_STALE_SECONDS = 60.0


def receive_replicate_webhook(headers: Mapping[str, str], body: bytes) -> WebhookReceipt:
    """Apply a signed Replicate webhook. Forbidden when it skipped CloudFront (services/origin_verify.py),
    Unauthorized for a bad signature, InvalidInput for a bad id or body.

    The webhook-id is claimed with a conditional write before the update is
    applied, so of concurrent deliveries of one webhook exactly one applies it
    and the others answer as replays. A delivery whose update fails gives its
    claim up, so the provider's retry is applied rather than taken for a replay.
    """
    check_origin(headers)  # before the signature: a request that skipped CloudFront costs no HMAC
    webhook_id = _verified_id(headers, body)
    observation = _observation(body)
    state = wiring.state_store()
    claim = uuid.uuid4().hex
    if not state.claim_webhook(webhook_id, claim, time.time(), CLAIM_STALE_SECONDS):
        count("WebhookReplays")
        return WebhookReceipt(duplicate=True, job=None)
    try:
        outcome = record_observation(observation)
    except BaseException:
        _release(webhook_id, claim)
        raise
    try:
        state.webhook_applied(webhook_id, claim, observation.job_id)
    except JobsyncError:
        # The job is stored, which is what the 2xx promises; the claim goes stale and a retry re-applies
        # the same update, which changes nothing.
        logger.warning("webhook applied but its receipt was not marked", extra={"webhook_id": webhook_id})
    count("WebhooksApplied")
    if outcome.created:
        count("JobsDiscovered")
    return WebhookReceipt(duplicate=False, job=outcome.job)


def _release(webhook_id: str, claim: str) -> None:
    try:
        wiring.state_store().release_webhook(webhook_id, claim)
    except JobsyncError:
        logger.warning("could not release a webhook claim; it goes stale instead", extra={"webhook_id": webhook_id})


def _verified_id(headers: Mapping[str, str], body: bytes) -> str:
    secret = _secret()
    try:
        webhook_id = verify_webhook(secret, headers, body)
    except InvalidWebhookSecret:
        logger.error("the configured webhook secret is not a valid whsec_ secret")
        raise
    except InvalidSignature as exc:
        logger.warning("webhook refused", extra={"reason": str(exc)})
        raise Unauthorized(f"webhook signature not accepted: {exc}") from exc
    try:
        return identifiers.webhook_id(webhook_id)
    except identifiers.InvalidIdentifier as exc:
        raise InvalidInput(f"webhook-id header: {exc}") from exc


def _secret() -> str:
    configured = get_settings().replicate_webhook_secret
    if configured is not None:
        return configured.get_secret_value()
    return provider_client(PROVIDER).webhook_secret()


def _observation(body: bytes) -> JobObservation:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise InvalidInput("webhook body is not JSON") from exc
    try:
        return provider_client(PROVIDER).observation_from_webhook(payload)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"webhook body is not a Replicate prediction: {exc}") from exc
