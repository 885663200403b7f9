"""Sending the simulator's webhooks: signed POSTs, retries for `completed`, a loop that follows the clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from local.replicate_simulator.state import SimulatedReplicate, WebhookEvent

log = logging.getLogger(__name__)

WEBHOOK_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # about a minute, like Replicate

Sleep = Callable[[float], Awaitable[Any]]


async def deliver_webhook(
    sim: SimulatedReplicate,
    client: httpx.AsyncClient,
    url: str,
    event: WebhookEvent,
    *,
    retry_delays: Sequence[float] = WEBHOOK_RETRY_DELAYS,
    sleep: Sleep = asyncio.sleep,
) -> int | None:
    """POST one webhook; a `completed` one is retried on non-2xx or transport errors.

    Returns the last HTTP status (None when no answer came). The webhook-id is
    the same on every attempt; timestamp and signature are fresh each time.
    """
    attempts = 1 + (len(retry_delays) if event.event == "completed" else 0)
    status: int | None = None
    for attempt in range(attempts):
        if attempt:
            await sleep(retry_delays[attempt - 1])
        headers, body = sim.webhook_request(event)
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            status = None
            log.warning("webhook %s to %s failed: %s", event.webhook_id, url, type(exc).__name__)
            continue
        status = response.status_code
        if 200 <= status < 300:
            return status
        log.warning("webhook %s to %s answered %s", event.webhook_id, url, status)
    return status


async def deliver_due(
    sim: SimulatedReplicate,
    client: httpx.AsyncClient,
    url: str,
    since: float,
    until: float,
    *,
    retry_delays: Sequence[float] = WEBHOOK_RETRY_DELAYS,
    sleep: Sleep = asyncio.sleep,
) -> list[tuple[WebhookEvent, int | None]]:
    """Send every webhook due in (since, until], concurrently; (event, last status) pairs."""
    events = sim.due_webhooks(since, until)
    statuses = await asyncio.gather(
        *(deliver_webhook(sim, client, url, event, retry_delays=retry_delays, sleep=sleep) for event in events)
    )
    return list(zip(events, statuses, strict=True))


async def webhook_loop(
    sim: SimulatedReplicate,
    url: str,
    *,
    stop: asyncio.Event | None = None,
    interval: float = 1.0,
    client: httpx.AsyncClient | None = None,
    retry_delays: Sequence[float] = WEBHOOK_RETRY_DELAYS,
) -> None:
    """Every `interval` seconds, send the webhooks that fell due since the last tick.

    It starts from the clock's reading, so a restart does not replay the past.
    Deliveries run as tasks: a receiver that is slow or down never holds up
    the loop. Runs until `stop` is set (or the task is cancelled).
    """
    stop = stop or asyncio.Event()
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
    pending: set[asyncio.Task[int | None]] = set()
    since = sim.clock()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            until = sim.clock()
            if until <= since:
                continue
            for event in sim.due_webhooks(since, until):
                task = asyncio.create_task(deliver_webhook(sim, http, url, event, retry_delays=retry_delays))
                pending.add(task)
                task.add_done_callback(pending.discard)
            since = until
    finally:
        for task in list(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if own_client:
            await http.aclose()
