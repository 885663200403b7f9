"""Scopes, the token form, and the token check: bootstrap digests, the one-minute cache, revocation, expiry and
the record of last use, on a clock the tests move (nothing sleeps)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from jobsync.auth import (
    BOOTSTRAP,
    Principal,
    Scope,
    bearer_token,
    is_token_id,
    issued_token_id,
    new_token,
    token_digest,
)
from jobsync.domain.errors import StoreUnavailable
from jobsync.services.tokens import CHECK_CACHE_SECONDS, LAST_USE_EVERY_SECONDS, TokenAuthority, iso
from jobsync.store.tokens import StoredToken, TokenMetadata

T0 = 1_741_806_238.0  # 2025-03-12T19:03:58Z


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeTokenStore:
    """The parts of TokenStore the check uses, counting reads and writes."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredToken] = {}
        self.reads = 0
        self.touches: list[str] = []
        self.failing = False

    def add(self, scope: Scope, *, name: str = "ci", expires_at: str | None = None) -> str:
        token_id, plaintext = new_token()
        meta = TokenMetadata(token_id, name, scope, iso(T0 - 3600), None, expires_at)
        self.rows[token_id] = StoredToken(meta, token_digest(plaintext))
        return plaintext

    def get(self, token_id: str) -> StoredToken | None:
        self.reads += 1
        return self.rows.get(token_id)

    def touch(self, token_id: str, now: str, unless_since: str) -> bool:
        if self.failing:
            raise StoreUnavailable("the job store did not answer: EndpointConnectionError")
        self.touches.append(now)
        row = self.rows.get(token_id)
        if row is None or (row.metadata.last_used_at or "") >= unless_since:
            return False
        self.rows[token_id] = replace(row, metadata=replace(row.metadata, last_used_at=now))
        return True


BOOTSTRAP_TOKEN = "a-bootstrap-token-from-the-template"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeTokenStore:
    return FakeTokenStore()


@pytest.fixture
def authority(store: FakeTokenStore, clock: Clock) -> TokenAuthority:
    return TokenAuthority(store, (hashlib.sha256(BOOTSTRAP_TOKEN.encode()).hexdigest(),), clock)


# ------------------------------------------------------------------- scopes and the token form


def test_each_scope_includes_the_ones_before_it() -> None:
    assert [scope.value for scope in Scope] == ["read", "operate", "admin"]
    for held in Scope:
        assert [held.allows(needed) for needed in Scope] == [needed.rank <= held.rank for needed in Scope]
    assert Scope.ADMIN.allows(Scope.OPERATE) and not Scope.READ.allows(Scope.OPERATE)


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("BEARER abc", "abc"), ("Basic abc", None), ("abc", None)]
    + [("Bearer ", None), ("", None), (None, None)],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_an_issued_token_carries_its_id() -> None:
    token_id, plaintext = new_token()
    assert is_token_id(token_id) and plaintext.startswith(f"jst_{token_id}_")
    assert issued_token_id(plaintext) == token_id
    assert new_token()[1] != plaintext


@pytest.mark.parametrize(
    "text",
    [
        "jst_0123456789ab_" + "x" * 42,  # secret too short
        "jst_0123456789ab_" + "x" * 44,  # too long
        "jst_0123456789AB_" + "x" * 43,  # ids are lowercase hex
        "jsx_0123456789ab_" + "x" * 43,
        "jst_0123456789ab_" + "x" * 42 + "!",
        " jst_0123456789ab_" + "x" * 43,
        "test-api-token",
    ],
)
def test_what_is_not_an_issued_token(text: str) -> None:
    assert issued_token_id(text) is None


# ------------------------------------------------------------------------------ the check


def test_a_bootstrap_token_is_admin_without_a_read(authority: TokenAuthority, store: FakeTokenStore) -> None:
    assert authority.authenticate(BOOTSTRAP_TOKEN) == Principal(None, BOOTSTRAP, Scope.ADMIN)
    assert store.reads == 0


@pytest.mark.parametrize("token", [None, "", "nope", "Bearer x", "jst_" + "0" * 600, BOOTSTRAP_TOKEN + "x"])
def test_what_is_not_a_token_is_refused_without_a_read(
    authority: TokenAuthority, store: FakeTokenStore, token: str | None
) -> None:
    assert authority.authenticate(token) is None
    assert store.reads == 0


def test_an_issued_token_speaks_for_its_row(authority: TokenAuthority, store: FakeTokenStore) -> None:
    plaintext = store.add(Scope.OPERATE, name="deploy-bot")
    token_id = issued_token_id(plaintext)
    assert authority.authenticate(plaintext) == Principal(token_id, "deploy-bot", Scope.OPERATE)
    # The same id with another secret is not the token.
    forged = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    assert authority.authenticate(forged) is None


def test_a_token_row_is_read_once_a_minute(authority: TokenAuthority, store: FakeTokenStore, clock: Clock) -> None:
    plaintext = store.add(Scope.READ)
    for _ in range(100):
        assert authority.authenticate(plaintext) is not None
        clock.now += 0.5
    assert store.reads == 1
    clock.now = T0 + CHECK_CACHE_SECONDS
    assert authority.authenticate(plaintext) is not None
    assert store.reads == 2


def test_an_unknown_id_is_read_once_a_minute_too(
    authority: TokenAuthority, store: FakeTokenStore, clock: Clock
) -> None:
    _, unknown = new_token()
    for _ in range(10):
        assert authority.authenticate(unknown) is None
    assert store.reads == 1


def test_a_revoked_token_stops_working_within_the_cache_time(
    authority: TokenAuthority, store: FakeTokenStore, clock: Clock
) -> None:
    plaintext = store.add(Scope.READ)
    assert authority.authenticate(plaintext) is not None
    del store.rows[issued_token_id(plaintext) or ""]  # revoked by another instance
    clock.now = T0 + CHECK_CACHE_SECONDS - 1
    assert authority.authenticate(plaintext) is not None  # this instance has not read the row again yet
    clock.now = T0 + CHECK_CACHE_SECONDS
    assert authority.authenticate(plaintext) is None


def test_the_instance_that_revokes_refuses_at_once(authority: TokenAuthority, store: FakeTokenStore) -> None:
    plaintext = store.add(Scope.READ)
    token_id = issued_token_id(plaintext) or ""
    assert authority.authenticate(plaintext) is not None
    del store.rows[token_id]
    authority.forget(token_id)
    assert authority.authenticate(plaintext) is None


def test_an_expired_token_is_refused_from_its_expiry_on(
    authority: TokenAuthority, store: FakeTokenStore, clock: Clock
) -> None:
    plaintext = store.add(Scope.READ, expires_at=iso(T0 + 30))
    clock.now = T0 + 29
    assert authority.authenticate(plaintext) is not None
    clock.now = T0 + 30  # within the cache time: the expiry is checked on every request, not on every read
    assert authority.authenticate(plaintext) is None
    assert store.reads == 1


def test_last_use_is_written_at_most_once_a_minute(
    authority: TokenAuthority, store: FakeTokenStore, clock: Clock
) -> None:
    plaintext = store.add(Scope.READ)
    token_id = issued_token_id(plaintext) or ""
    for second in range(0, 180, 5):  # three minutes of a request every 5 s
        clock.now = T0 + second
        assert authority.authenticate(plaintext) is not None
    assert store.touches == [iso(T0), iso(T0 + 60), iso(T0 + 120)]
    assert store.rows[token_id].metadata.last_used_at == iso(T0 + 120)


def test_a_use_that_cannot_be_recorded_still_passes(authority: TokenAuthority, store: FakeTokenStore) -> None:
    plaintext = store.add(Scope.ADMIN)
    store.failing = True
    assert authority.authenticate(plaintext) is not None


def test_made_up_tokens_cannot_grow_the_cache_without_bound(authority: TokenAuthority, store: FakeTokenStore) -> None:
    plaintext = store.add(Scope.READ)
    assert authority.authenticate(plaintext) is not None
    for _ in range(1100):
        authority.authenticate(new_token()[1])
    reads = store.reads
    assert authority.authenticate(plaintext) is not None
    assert store.reads == reads + 1  # pushed out by the flood, so read again


def test_last_use_and_cache_times_are_one_minute() -> None:
    # The README's Security section and the API's revoke summary say 60 s.
    assert CHECK_CACHE_SECONDS == 60 and LAST_USE_EVERY_SECONDS == 60
