"""Whether background polling is on, and how its last tick went: what the polling routes answer.

On when no webhook URL is configured and off when one is, unless the
deployment says otherwise explicitly; the user's preference overrides both.
Kept apart from the tick (services/polling.py) so that the functions answering
these routes do not import the refresh, the imports and the notifications at
their cold start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from jobsync import wiring
from jobsync.config import Settings, get_settings


@dataclass(frozen=True)
class PollingState:
    is_active: bool
    preference: bool | None
    interval_seconds: int


def polling_state() -> PollingState:
    settings = get_settings()
    preference = wiring.state_store().polling_preference()
    return PollingState(_effective(settings, preference), preference, settings.polling.interval_seconds)


@dataclass(frozen=True)
class LastTick:
    at: str | None  # ISO-8601 UTC
    error: str | None


@dataclass(frozen=True)
class PollingStatus:
    is_active: bool
    preference: bool | None
    last_tick: LastTick


def polling_status() -> PollingStatus:
    """Whether polling is on, and how its last recorded tick went."""
    state = polling_state()
    tick = wiring.state_store().last_poll_tick()
    last = LastTick(_iso(tick.at), tick.error) if tick else LastTick(None, None)
    return PollingStatus(state.is_active, state.preference, last)


def set_polling_preference(enabled: bool | None) -> PollingStatus:
    wiring.state_store().set_polling_preference(enabled)
    return polling_status()


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _effective(settings: Settings, preference: bool | None) -> bool:
    if preference is not None:
        return preference
    if settings.polling.enabled is not None:
        return settings.polling.enabled
    return not settings.webhooks_configured
