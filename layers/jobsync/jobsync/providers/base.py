"""The provider interface: what jobsync needs from any training-job provider.

Handlers and services only see this module (and `registry`, which hands out
the clients); Replicate is one implementation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from jobsync.domain.job import JobObservation


class ProviderError(Exception):
    """A provider call failed; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderAuthError(ProviderError):
    """The provider refused our credentials."""


class ProviderNotFound(ProviderError):
    """The provider does not know this job (any more)."""


class ProviderUnavailable(ProviderError):
    """The provider failed in a passing way (throttling, 5xx, a timeout, a dropped or cut-short answer) after
    our retries: asking again later may work, unlike a refusal of what we asked."""


class ProviderRateLimited(ProviderUnavailable):
    """The provider throttled us for longer than we are willing to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobObservation]
    # Opaque handle for the next (older) page; None on the last page.
    next_page: str | None


@dataclass(frozen=True)
class Account:
    username: str | None


JOB_KINDS = ("prediction", "training")


class ProviderClient(Protocol):
    name: str
    display_name: str

    def list_page(self, kind: str, page: str | None = None) -> JobPage:
        """One page of `kind` jobs, newest first; `page` comes from a previous `next_page`."""

    def get_job(self, job_id: str, kind: str | None = None) -> JobObservation:
        """One job with its full logs. Raises ProviderNotFound when it is gone."""

    def account(self) -> Account:
        """Who the credentials belong to. Raises ProviderAuthError when they are refused."""

    def webhook_secret(self) -> str:
        """The secret webhooks are signed with (`whsec_...`)."""

    def observation_from_webhook(self, payload: object) -> JobObservation:
        """The job a webhook's body (already parsed JSON) describes. Raises ValueError when it describes none."""

    def cancel(self, job_id: str, kind: str | None = None) -> JobObservation | None:
        """Ask the provider to cancel a job, once (never retried: the request may have landed). Returns the job
        as the provider describes it after the request, or None when its answer does not describe it."""


def iter_pages(client: ProviderClient, kind: str) -> Iterator[JobPage]:
    page = client.list_page(kind)
    yield page
    while page.next_page:
        page = client.list_page(kind, page.next_page)
        yield page
