"""Replicate's webhooks: verify the signature on the raw bytes, de-duplicate, apply."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.domain.errors import InvalidInput, Unauthorized
from jobsync.domain.job import Job, JobObservation
from jobsync.domain.webhook_signature import InvalidSignature, InvalidWebhookSecret, verify_webhook
from jobsync.observability import count, logger
from jobsync.providers.registry import provider_client
from jobsync.services.job_updates import record_observation

PROVIDER = "replicate"


@dataclass(frozen=True)
class WebhookReceipt:
    duplicate: bool
    job: Job | None


def receive_replicate_webhook(headers: Mapping[str, str], body: bytes) -> WebhookReceipt:
    """Apply a signed Replicate webhook. Unauthorized for a bad signature, InvalidInput for a bad body.

    The receipt is recorded only after the job is stored: if storing fails,
    Replicate's retry is applied rather than mistaken for a replay.
    """
    webhook_id = _verified_id(headers, body)
    state = wiring.state_store()
    if state.webhook_seen(webhook_id):
        count("WebhookReplays")
        return WebhookReceipt(duplicate=True, job=None)
    observation = _observation(body)
    outcome = record_observation(observation)
    state.record_webhook(webhook_id, observation.job_id)
    count("WebhooksApplied")
    if outcome.created:
        count("JobsDiscovered")
    return WebhookReceipt(duplicate=False, job=outcome.job)


def _verified_id(headers: Mapping[str, str], body: bytes) -> str:
    secret = _secret()
    try:
        return verify_webhook(secret, headers, body)
    except InvalidWebhookSecret:
        logger.error("the configured webhook secret is not a valid whsec_ secret")
        raise
    except InvalidSignature as exc:
        logger.warning("webhook refused", extra={"reason": str(exc)})
        raise Unauthorized(f"webhook signature not accepted: {exc}") from exc


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
