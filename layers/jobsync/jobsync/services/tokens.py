"""API tokens: issued, listed and revoked through the API, and recognised on every protected request.

Recognising a token costs nothing for a string that is not one (no read), and
at most one key read per token per minute on each Lambda instance: what a
token's row says is kept for CHECK_CACHE_SECONDS. So a revoked token keeps
working for at most that long on an instance that had just checked it (and
not at all on the instance that revoked it). Its last use is written at most
once a minute, so reads stay reads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from functools import lru_cache

from jobsync import wiring
from jobsync.auth import (
    BOOTSTRAP,
    MAX_TOKEN_LENGTH,
    Principal,
    Scope,
    is_token_id,
    issued_token_id,
    matches_any,
    new_token,
    token_digest,
)
from jobsync.config import get_settings
from jobsync.domain.errors import InvalidInput, StoreUnavailable, TokenNotFound
from jobsync.observability import logger
from jobsync.store.dynamo import ConcurrentUpdate
from jobsync.store.tokens import StoredToken, TokenMetadata, TokenStore

CHECK_CACHE_SECONDS = 60.0
LAST_USE_EVERY_SECONDS = 60.0
# Enough for every real token; a flood of made-up ones only pushes out other made-up ones.
_CACHE_ENTRIES = 1024


def iso(epoch: float) -> str:
    """UTC ISO 8601 to the second: the form every token time is stored and shown in (it sorts like time)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class TokenAuthority:
    """Says who a presented token speaks for; one per Lambda instance (`authority()`)."""

    def __init__(
        self, store: TokenStore, bootstrap_digests: tuple[str, ...], clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.bootstrap_digests = bootstrap_digests
        self.clock = clock
        # token id -> (when its row was read, what it said); the local stack calls handlers on many threads.
        self._seen: OrderedDict[str, tuple[float, StoredToken | None]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, token: str | None) -> Principal | None:
        """The token's principal; None when it is missing, unknown, revoked, expired or not a token at all."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        if self.bootstrap_digests and matches_any(token, self.bootstrap_digests):
            return Principal(None, BOOTSTRAP, Scope.ADMIN)
        token_id = issued_token_id(token)
        if token_id is None:
            return None
        now = self.clock()
        stored = self._lookup(token_id, now)
        if stored is None or not matches_any(token, (stored.digest,)):
            return None
        meta = stored.metadata
        if meta.expires_at is not None and _epoch(meta.expires_at) <= now:
            return None
        self._note_use(stored, now)
        return Principal(meta.token_id, meta.name, meta.scope)

    def forget(self, token_id: str) -> None:
        """Drop what this instance knows of a token (after revoking it here)."""
        with self._lock:
            self._seen.pop(token_id, None)

    def _lookup(self, token_id: str, now: float) -> StoredToken | None:
        with self._lock:
            seen = self._seen.get(token_id)
        if seen is not None and now - seen[0] < CHECK_CACHE_SECONDS:
            return seen[1]
        stored = self.store.get(token_id)
        self._remember(token_id, now, stored)
        return stored

    def _remember(self, token_id: str, read_at: float, stored: StoredToken | None) -> None:
        with self._lock:
            self._seen[token_id] = (read_at, stored)
            self._seen.move_to_end(token_id)
            while len(self._seen) > _CACHE_ENTRIES:
                self._seen.popitem(last=False)

    def _note_use(self, stored: StoredToken, now: float) -> None:
        last = stored.metadata.last_used_at
        if last is not None and now - _epoch(last) < LAST_USE_EVERY_SECONDS:
            return
        token_id = stored.metadata.token_id
        used = replace(stored, metadata=replace(stored.metadata, last_used_at=iso(now)))
        with self._lock:
            seen = self._seen.get(token_id)
            if seen is not None:  # keep when the row was read: the cache still expires on time
                self._seen[token_id] = (seen[0], used)
        try:
            self.store.touch(token_id, iso(now), unless_since=iso(now - LAST_USE_EVERY_SECONDS))
        except StoreUnavailable as exc:
            # The request itself is fine; only its record of use is late.
            logger.warning("could not record a token's use", extra={"token_id": token_id, "error": str(exc)})


@lru_cache(maxsize=1)
def authority() -> TokenAuthority:
    """This instance's authority: the tokens table and the bootstrap digests of the settings."""
    return TokenAuthority(wiring.token_store(), get_settings().api_token_hashes)


def create_token(name: str, scope: Scope, expires_at: datetime | None) -> tuple[str, TokenMetadata]:
    """A new token (its plaintext, shown once) and what is stored about it."""
    checker = authority()
    now = checker.clock()
    if expires_at is not None and expires_at.timestamp() <= now:
        raise InvalidInput(f"expires_at {expires_at.isoformat()} is not in the future")
    for _ in range(3):  # a 48-bit id taken already is next to impossible; try another all the same
        token_id, plaintext = new_token()
        meta = TokenMetadata(
            token_id=token_id,
            name=name,
            scope=scope,
            created_at=iso(now),
            last_used_at=None,
            expires_at=iso(expires_at.timestamp()) if expires_at is not None else None,
        )
        try:
            checker.store.create(StoredToken(meta, token_digest(plaintext)))
        except ConcurrentUpdate:
            continue
        logger.info("token created", extra={"token_id": token_id, "scope": scope.value})
        return plaintext, meta
    raise StoreUnavailable("could not find a free token id")


def list_tokens() -> list[TokenMetadata]:
    return authority().store.all()


def revoke_token(token_id: str) -> TokenMetadata:
    """Delete a token: refused here at once, and everywhere within CHECK_CACHE_SECONDS."""
    checker = authority()
    removed = checker.store.delete(token_id) if is_token_id(token_id) else None
    checker.forget(token_id)
    if removed is None:
        raise TokenNotFound(f"no token with id {token_id!r}")
    logger.info("token revoked", extra={"token_id": token_id})
    return removed
