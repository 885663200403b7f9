"""Read-only views of the service: metrics, client configuration, provider credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.domain.status import ACTIVE_STATUSES
from jobsync.providers.base import ProviderAuthError, ProviderError

if TYPE_CHECKING:
    from jobsync.services.polling_preference import PollingState

# The polling service and the provider client are imported where they are used: the metrics function
# needs neither (the poller's imports, httpx among them, were a third of its cold start).


@dataclass(frozen=True)
class JobMetrics:
    job_count: int
    active_count: int
    jobs_by_status: dict[str, int]
    total_cost_usd: float


def job_metrics() -> JobMetrics:
    """From counters kept with every job write: constant cost, however many jobs there are."""
    counters = wiring.job_store().counters()
    by_status = counters.by_status
    return JobMetrics(
        job_count=sum(by_status.values()),
        active_count=sum(by_status[status.value] for status in ACTIVE_STATUSES),
        jobs_by_status=by_status,
        total_cost_usd=round(counters.total_cost_usd, 6),
    )


@dataclass(frozen=True)
class ClientConfig:
    websocket_url: str | None
    polling: PollingState
    webhooks_configured: bool


def client_config() -> ClientConfig:
    from jobsync.services.polling_preference import polling_state

    settings = get_settings()
    return ClientConfig(settings.websocket_url, polling_state(), settings.webhooks_configured)


@dataclass(frozen=True)
class CredentialCheck:
    valid: bool
    username: str | None
    error: str | None


def check_credentials(provider: str) -> CredentialCheck:
    from jobsync.providers.registry import provider_client

    try:
        account = provider_client(provider).account()
    except ProviderAuthError as exc:
        return CredentialCheck(False, None, str(exc))
    except ProviderError as exc:
        return CredentialCheck(False, None, f"could not reach the provider: {exc}")
    return CredentialCheck(True, account.username, None)
