"""Which provider clients exist, and one cached client per provider per process.

Handlers and services ask for a client by name; only this module knows which
class serves which name. Building a client never talks to the provider or to
Secrets Manager and never fails for a missing or unreadable token: the first
call does (ProviderAuthError), so a route like `validate` can still answer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from jobsync.config import Settings
from jobsync.providers.base import ProviderAuthError, ProviderClient, ProviderError

PROVIDERS: tuple[str, ...] = ("replicate",)


class UnknownProvider(ProviderError):
    """No provider client is known by this name."""


@lru_cache(maxsize=None)
def _client_for(name: str) -> ProviderClient:
    from jobsync.config import get_settings

    if name == "replicate":
        # Imported here: only functions that talk to a provider pay for httpx.
        from jobsync.providers.replicate import ReplicateClient

        settings = get_settings()
        return ReplicateClient(settings, token=_token_from_secrets_manager(settings))
    raise UnknownProvider(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")


def _token_from_secrets_manager(settings: Settings) -> Callable[[], str] | None:
    """In AWS the token lives in Secrets Manager: read on each request (cached there for a while, so a
    rotated token reaches this warm client). None when the environment gives the token itself."""
    arn = settings.replicate_api_token_secret_arn
    if settings.replicate_api_token is not None or not arn:
        return None

    def token() -> str:
        from jobsync.secrets import SecretUnavailable, secret_string

        try:
            return secret_string(arn)
        except SecretUnavailable as exc:
            raise ProviderAuthError(str(exc)) from exc

    return token


def provider_client(name: str = "replicate") -> ProviderClient:
    """The process-wide client for provider `name`; raises UnknownProvider for other names."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in PROVIDERS:
        raise UnknownProvider(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
    return _client_for(key)


def clear_provider_clients() -> None:
    """Forget the cached clients (tests, or after the settings changed)."""
    _client_for.cache_clear()


# The cache is keyed by the normalised name, so `provider_client()` and
# `provider_client("replicate")` share one client; this keeps lru_cache's usual handle.
provider_client.cache_clear = clear_provider_clients  # type: ignore[attr-defined]
