"""Background polling: the scheduled ticks that refresh active jobs (whether polling is on:
services/polling_preference.py).

Each tick's outcome is kept so that clients can tell when polling is failing:
every failing tick is recorded, a tick that goes well only when the stored
outcome says otherwise (the first, or the one after a failure). A healthy
tick that changes nothing writes nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.domain.errors import JobsyncError
from jobsync.domain.timestamps import parse_timestamp
from jobsync.observability import logger
from jobsync.providers.registry import PROVIDERS
from jobsync.services import final_logs, logs, webhook_delivery
from jobsync.services.history_import import resume_stalled_imports
from jobsync.services.polling_preference import polling_state
from jobsync.services.refresh import RefreshReport, refresh_active_jobs
from jobsync.store.state import PollTick


@dataclass(frozen=True)
class TickReport:
    polled: bool
    refreshes: tuple[RefreshReport, ...] = ()
    error: str | None = None


# A tick's error as stored and shown: enough to name the problem, short enough for a status line.
_ERROR_CHARS = 500


def poll_tick() -> TickReport:
    """One pass over every provider's active jobs, when polling is on; its outcome is recorded."""
    # Each of these fails on its own: a failure is logged and never stops the tick (nor the others).
    _unfailing(resume_stalled_imports)  # whether polling is on or not: a history import must not wait for a sync
    _unfailing(final_logs.resume_pending)  # ended jobs' final log tails that a lost hand-off left pending
    _unfailing(logs.read_followed_jobs)  # followed jobs' new lines reach their WebSocket followers without a dashboard
    # Notifications a lost hand-off left undelivered (only with the channel on).
    _unfailing(webhook_delivery.resume_deliveries)
    if not polling_state().is_active:
        return TickReport(polled=False)
    started = time.time()
    reports, failures = [], []
    for provider in PROVIDERS:
        try:
            reports.append(refresh_active_jobs(provider))
        except Exception as exc:  # noqa: BLE001 - one provider failing never stops the others
            logger.exception("poll of a provider failed", extra={"provider": provider})
            # Our own errors say what failed; anything else is named by its type only, as a 500 would be.
            failures.append(f"{provider}: {exc if isinstance(exc, JobsyncError) else type(exc).__name__}")
    for report in reports:
        logger.info(
            "poll tick",
            extra={
                "provider": report.provider,
                "active": report.active,
                "updated": report.updated,
                "list_requests": report.list_requests,
                "single_fetches": report.single_fetches,
                "tails_requested": report.tails_requested,
                "errors": len(report.errors),
            },
        )
    failures += [f"{report.provider}: {error}" for report in reports for error in report.errors]
    error = _summary(failures)
    _record_outcome(PollTick(started, error))
    return TickReport(polled=True, refreshes=tuple(reports), error=error)


def _unfailing(step: Callable[[], object]) -> None:
    """Run one of the tick's own steps; should it fail, say so in the log and go on."""
    try:
        step()
    except Exception:  # noqa: BLE001 - one failing step never stops the rest of a tick
        logger.exception("a poll tick's step failed", extra={"step": getattr(step, "__qualname__", repr(step))})


def _summary(failures: list[str]) -> str | None:
    if not failures:
        return None
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    first = failures[0]
    if len(first) + len(more) > _ERROR_CHARS:
        first = first[: _ERROR_CHARS - len(more) - 1] + "…"
    return first + more


def _record_outcome(tick: PollTick) -> None:
    """Every failing tick (its time says the failure is current), and a good one that ends a failure.

    One read a tick; a write only when the tick failed or the stored outcome is
    not a success, so an idle, healthy poller writes nothing.
    """
    store = wiring.state_store()
    try:
        last = store.last_poll_tick()
        if tick.error is None and last is not None and last.error is None:
            return
        store.save_poll_tick(tick)
    except JobsyncError:  # the tick itself is done; only its record is lost
        logger.exception("could not record the poll tick's outcome")


# A tick started later than this before the invocation's timeout might not finish.
_TICK_BUDGET_SECONDS = 10.0


def scheduled_time(event: dict[str, Any]) -> float | None:
    """When EventBridge Scheduler meant to fire (its `<aws.scheduler.scheduled-time>`), as epoch seconds."""
    parsed = parse_timestamp(event.get("scheduled_time")) if isinstance(event.get("scheduled_time"), str) else None
    return parsed.timestamp() if parsed else None


def due_times(start: float, period: float, interval: float) -> list[float]:
    """The tick times in [start, start + period): the multiples of `interval` since the epoch.

    Invocations of a fixed-rate schedule tile time, so every multiple falls in
    exactly one of them: an interval that does not divide the period still
    holds, with no state to keep and nothing to write.
    """
    first = math.ceil(start / interval) * interval
    count = max(0, math.ceil((start + period - first) / interval))
    return [first + number * interval for number in range(count)]


def run_scheduled_ticks(
    remaining_ms: Callable[[], int],
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
    scheduled_at: float | None = None,
) -> list[TickReport]:
    """The ticks due during this scheduler invocation, each at its time.

    EventBridge fires at most once a minute, so an invocation covers
    `schedule_period_seconds` from its scheduled time (not from when it got to
    run: windows of late starts would overlap and leave gaps) and runs every
    tick due in it, as long as the Lambda has the time left to finish one. A
    tick more than an interval overdue (a retried, late invocation) is skipped:
    the invocation on time for it has run it.
    """
    sleep, clock = sleep or time.sleep, clock or time.time
    polling = get_settings().polling
    start = clock() if scheduled_at is None else scheduled_at
    reports = []
    for due in due_times(start, polling.schedule_period_seconds, polling.interval_seconds):
        if due < clock() - polling.interval_seconds:
            continue
        wait = max(0.0, due - clock())
        if remaining_ms() / 1000 - wait < _TICK_BUDGET_SECONDS:
            break  # the next invocation's window starts about now anyway
        if wait:
            sleep(wait)
        reports.append(poll_tick())
    return reports
