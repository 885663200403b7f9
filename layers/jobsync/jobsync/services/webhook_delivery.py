"""The webhook channel: a notification POSTed to an incoming-webhook URL (Slack's, or anyone's).

The `notify_webhook` function runs `deliver` for one event handed off by the
notifier. What to send is read from the event's claim item in DynamoDB (the
hand-off carries only the event id), the delivery is claimed there so that two
invocations never post the same event, and a POST that fails for a passing
reason (a timeout, a reset, 429, 5xx) is tried again within the invocation
with a growing wait. When every try failed, `deliver` raises: Lambda retries
the invocation twice (a minute, then two, later) and then sends the event to
the function's dead-letter queue. A refusal (another 4xx) is not tried again
within the invocation.

The poller's tick resumes deliveries whose hand-off or invocation was lost
(`resume_deliveries`): the outbox in DynamoDB lists every delivery not done.

The URL is a credential (anyone holding a Slack webhook URL may post to the
channel): it is never logged, and errors name the failure, not the URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobsync import background, deadline, wiring
from jobsync.config import get_settings
from jobsync.observability import count, logger
from jobsync.services.notifier import lease_until
from jobsync.store.notifications import DELIVERED, DELIVERING, PENDING, RETRYING

if TYPE_CHECKING:
    # httpx is imported where a delivery is made: the poller imports this module for
    # `resume_deliveries` only and would otherwise pay httpx's import at every cold start.
    import httpx

_STATUS_ICON = {"completed": ":white_check_mark:", "failed": ":x:", "cancelled": ":no_entry_sign:"}
# Past this, a delivery still not done is taken to be lost (Lambda's own retries take about 3 minutes).
RESUME_AFTER_SECONDS = 10 * 60
# Resumed at most this often; after that it is given up (each failed run is in the dead-letter queue).
MAX_RESUMES = 2


class DeliveryFailed(Exception):
    """Every try failed; Lambda retries the invocation and then dead-letters it."""


class WebhookNotConfigured(Exception):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    """Tries per invocation and the waits between them: `first_wait` × 2ⁿ, at most `max_wait`."""

    attempts: int = 3
    first_wait: float = 1.0
    max_wait: float = 8.0
    timeout: float = 5.0

    def wait_before(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number `attempt` (2, 3, ...); a server's Retry-After is honoured, capped."""
        backoff = min(self.first_wait * float(2 ** max(attempt - 2, 0)), self.max_wait)
        return min(max(backoff, retry_after or 0.0), self.max_wait)


@dataclass(frozen=True)
class Attempt:
    status: int | None  # None: no answer (timeout, reset, refused)
    error: str | None = None


# ---- the message ------------------------------------------------------------------------------------


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "—"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _cost(value: Any) -> str:
    return f"${value:.2f}" if isinstance(value, (int, float)) else "—"


def webhook_message(payload: dict[str, Any]) -> dict[str, Any]:
    """Slack-compatible JSON: `text` (what notifications show), `blocks` with the fields, and the event's fields."""
    job_id, model, status = payload["job_id"], payload.get("model") or "unknown model", payload["status"]
    url = payload.get("job_url")
    link = f" <{url}|Open the job>" if url else ""
    if payload["type"] == "job_cost_threshold_crossed":
        headline = (
            f":moneybag: Job `{job_id}` ({model}) has cost {_cost(payload.get('cost_usd'))}, "
            f"past the {_cost(payload.get('cost_threshold_usd'))} threshold ({status})."
        )
    else:
        icon = _STATUS_ICON.get(status, ":information_source:")
        headline = (
            f"{icon} Job `{job_id}` ({model}) {status} after {_duration(payload.get('duration_seconds'))}, "
            f"cost {_cost(payload.get('cost_usd'))}."
        )
    fields = [
        ("Job", f"`{job_id}`"),
        ("Model", model),
        ("Status", status),
        ("Duration", _duration(payload.get("duration_seconds"))),
        ("Cost", _cost(payload.get("cost_usd"))),
    ]
    if payload.get("error_message"):
        fields.append(("Error", str(payload["error_message"])[:500]))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline + link}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields]},
    ]
    # Slack reads `text` and `blocks`; any other receiver gets the event's own fields beside them.
    return {**payload, "text": headline + link, "blocks": blocks}


# ---- posting ------------------------------------------------------------------------------------------


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def post_with_retries(
    url: str,
    body: dict[str, Any],
    *,
    client: httpx.Client,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> list[Attempt]:
    """POST `body` until a 2xx; the attempts made. Raises DeliveryFailed when none succeeded.

    A wait that would not leave time for one more try before the invocation's deadline is not taken.
    """
    import httpx

    attempts: list[Attempt] = []
    retry_after: float | None = None
    for number in range(1, policy.attempts + 1):
        if number > 1:
            wait = policy.wait_before(number, retry_after)
            left = deadline.seconds_left()
            if left is not None and left < wait + policy.timeout:
                break
            sleep(wait)
        try:
            response = client.post(url, json=body, timeout=policy.timeout)
        except httpx.InvalidURL:
            # Its message may quote the URL, which is a credential: say only what is wrong.
            raise DeliveryFailed("the notify webhook URL is not a valid URL") from None
        except httpx.HTTPError as exc:
            attempts.append(Attempt(None, type(exc).__name__))
            retry_after = None
            continue
        attempts.append(Attempt(response.status_code))
        if response.is_success:
            return attempts
        retry_after = _retry_after(response)
        if response.status_code < 500 and response.status_code not in (408, 429):
            break  # refused: trying again now would be refused again
    raise DeliveryFailed(
        "the notify webhook answered "
        + ", ".join(str(attempt.status) if attempt.status else str(attempt.error) for attempt in attempts)
    )


def webhook_url() -> str:
    """The webhook URL: given directly (local stack) or read from Secrets Manager (AWS)."""
    settings = get_settings()
    if settings.notify_webhook_url is not None:
        return settings.notify_webhook_url.get_secret_value()
    if settings.notify_webhook_url_secret_arn:
        from jobsync.secrets import secret_string

        return secret_string(settings.notify_webhook_url_secret_arn)
    raise WebhookNotConfigured("no notify webhook URL is configured")


def _new_client() -> httpx.Client:
    import httpx

    return httpx.Client()


# ---- one delivery -------------------------------------------------------------------------------------


def deliver(
    event_id: str,
    *,
    client: httpx.Client | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> str:
    """Post the event's message once; what happened ("delivered", or why nothing was sent)."""
    store = wiring.notification_store()
    delivery = store.delivery(event_id)
    if delivery is None or delivery.payload is None:
        logger.warning("nothing to deliver", extra={"event_id": event_id})
        return "unknown"
    if delivery.state == DELIVERED:
        return "already delivered"
    now = clock()
    if not store.claim_delivery(event_id, now, lease_until(now)):
        return "being delivered"  # another invocation holds it (or it is done)
    http = client if client is not None else _new_client()
    try:
        message = webhook_message(delivery.payload)
        attempts = post_with_retries(webhook_url(), message, client=http, policy=policy, sleep=sleep)
    except BaseException:
        store.delivery_failed(event_id, clock())
        count("WebhookDeliveriesFailed")
        raise
    finally:
        if client is None:
            http.close()
    store.delivered(event_id, clock())
    count("WebhookDeliveries")
    logger.info("notification delivered", extra={"event_id": event_id, "attempts": len(attempts)})
    return "delivered"


def resume_deliveries(*, clock: Callable[[], float] = time.time) -> int:
    """Hand off again every delivery left undone for RESUME_AFTER_SECONDS; how many. For the poller's tick."""
    settings = get_settings()
    function = settings.notify_webhook_function
    if not function:
        return 0  # no webhook channel: not even the outbox is read
    store = wiring.notification_store()
    now, resumed = clock(), 0
    for event_id in store.pending_deliveries():
        delivery = store.delivery(event_id)
        if delivery is None or delivery.state not in (PENDING, RETRYING, DELIVERING):
            store.drop_from_outbox(event_id)  # delivered, given up or expired: only the outbox entry was left
            continue
        if now - delivery.updated_at < RESUME_AFTER_SECONDS or (
            delivery.state == DELIVERING and delivery.lease_until > now
        ):
            continue  # still Lambda's: in flight, queued or between its retries
        if delivery.resumes >= MAX_RESUMES:
            logger.warning("notification delivery given up", extra={"event_id": event_id})
            store.abandon(event_id, now)
            continue
        store.note_resumed(event_id, now)
        if background.hand_off(function, {"event_id": event_id}):
            resumed += 1
    return resumed
