"""Builds the stores and helpers from the settings, once per process (a Lambda instance)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from jobsync.config import get_settings
from jobsync.domain.cost import HardwarePricing

# boto3 (through the stores' shared module) is loaded at init: every function that builds a store needs it,
# and what init does is done before the first request (ahead of it with provisioned concurrency).
from jobsync.store import dynamo

# Each store is imported where it is built: a function loads the stores it uses, not all seven (cold start).
if TYPE_CHECKING:
    from jobsync.store.connections import ConnectionStore
    from jobsync.store.imports import ImportStore
    from jobsync.store.jobs import JobStore
    from jobsync.store.logs import LogStore
    from jobsync.store.notifications import NotificationStore
    from jobsync.store.state import StateStore
    from jobsync.store.tokens import TokenStore


@lru_cache(maxsize=1)
def job_store() -> JobStore:
    from jobsync.store.jobs import JobStore

    settings = get_settings()
    return JobStore(settings.jobs_table, settings.state_table)


@lru_cache(maxsize=1)
def state_store() -> StateStore:
    from jobsync.store.state import StateStore

    return StateStore(get_settings().state_table)


@lru_cache(maxsize=1)
def log_store() -> LogStore:
    from jobsync.store.logs import LogStore

    return LogStore(get_settings().state_table)


@lru_cache(maxsize=1)
def import_store() -> ImportStore:
    from jobsync.store.imports import ImportStore

    return ImportStore(get_settings().state_table)


@lru_cache(maxsize=1)
def connection_store() -> ConnectionStore:
    from jobsync.store.connections import ConnectionStore

    settings = get_settings()
    return ConnectionStore(settings.connections_table, settings.state_table)


@lru_cache(maxsize=1)
def token_store() -> TokenStore:
    from jobsync.store.tokens import TokenStore

    return TokenStore(get_settings().tokens_table)


@lru_cache(maxsize=1)
def notification_store() -> NotificationStore:
    from jobsync.store.notifications import NotificationStore

    return NotificationStore(get_settings().state_table)


@lru_cache(maxsize=1)
def pricing() -> HardwarePricing:
    settings = get_settings()
    return HardwarePricing(hardware_by_model=dict(settings.hardware_by_model), default_sku=settings.default_hardware)


def reset() -> None:
    """Forget everything built from the environment (tests and the local stack change it)."""
    from jobsync import secrets
    from jobsync.providers import registry
    from jobsync.push import topic, websocket
    from jobsync.services import tokens

    for cached in (
        job_store,
        state_store,
        log_store,
        connection_store,
        token_store,
        tokens.authority,
        pricing,
        get_settings,
    ):
        cached.cache_clear()
    dynamo.forget_resources()
    registry.clear_provider_clients()
    secrets.forget_secrets()
    websocket.pusher.cache_clear()
    import_store.cache_clear()
    notification_store.cache_clear()
    topic.topic.cache_clear()
