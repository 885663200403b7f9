"""Background polling: whether it is on, and the scheduled ticks that refresh active jobs.

On when no webhook URL is configured and off when one is, unless the
deployment says otherwise explicitly; the user's preference overrides both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from jobsync import wiring
from jobsync.config import Settings, get_settings
from jobsync.observability import logger
from jobsync.providers.registry import PROVIDERS
from jobsync.services.refresh import RefreshReport, refresh_active_jobs


@dataclass(frozen=True)
class PollingState:
    is_active: bool
    preference: bool | None
    interval_seconds: int


def polling_state() -> PollingState:
    settings = get_settings()
    preference = wiring.state_store().polling_preference()
    return PollingState(_effective(settings, preference), preference, settings.polling.interval_seconds)


def set_polling_preference(enabled: bool | None) -> PollingState:
    wiring.state_store().set_polling_preference(enabled)
    return polling_state()


def _effective(settings: Settings, preference: bool | None) -> bool:
    if preference is not None:
        return preference
    if settings.polling.enabled is not None:
        return settings.polling.enabled
    return not settings.webhooks_configured


@dataclass(frozen=True)
class TickReport:
    polled: bool
    refreshes: tuple[RefreshReport, ...] = ()


def poll_tick() -> TickReport:
    """One pass over every provider's active jobs, when polling is on."""
    if not polling_state().is_active:
        return TickReport(polled=False)
    reports = []
    for provider in PROVIDERS:
        try:
            reports.append(refresh_active_jobs(provider))
        except Exception:  # noqa: BLE001 - one provider failing never stops the others
            logger.exception("poll of a provider failed", extra={"provider": provider})
    for report in reports:
        logger.info(
            "poll tick",
            extra={
                "provider": report.provider,
                "active": report.active,
                "updated": report.updated,
                "list_requests": report.list_requests,
                "single_fetches": report.single_fetches,
                "errors": len(report.errors),
            },
        )
    return TickReport(polled=True, refreshes=tuple(reports))


def run_scheduled_ticks(
    remaining_ms: Callable[[], int],
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> list[TickReport]:
    """All ticks one scheduler invocation owes.

    EventBridge fires at most once a minute, so an invocation every
    `schedule_period_seconds` runs period / interval ticks, `interval_seconds`
    apart, as long as the Lambda has time left for another one.
    """
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    polling = get_settings().polling
    ticks = max(1, polling.schedule_period_seconds // polling.interval_seconds)
    started = clock()
    reports = [poll_tick()]
    for number in range(1, ticks):
        wait = started + number * polling.interval_seconds - clock()
        # Leave room for the tick itself; a tick skipped here is the next invocation's first.
        if remaining_ms() / 1000 - max(wait, 0) < polling.interval_seconds:
            break
        if wait > 0:
            sleep(wait)
        reports.append(poll_tick())
    return reports
