"""API tokens: their scopes, their form, and how a presented token is recognised.

A token is never stored, only its sha256 digest. Issued tokens read
`jst_<token id>_<secret>`: the id names the stored row, so checking one is a
single key read (and a string that is not of that form is refused without
reading anything). The bootstrap tokens (template parameter `ApiTokenHashes`,
the local stack's `JOBSYNC_API_TOKEN`) are plain strings known by their
digests alone; they carry the `admin` scope.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

TOKEN_PREFIX = "jst"
_TOKEN_ID = re.compile(r"[0-9a-f]{12}")
_ISSUED = re.compile(rf"{TOKEN_PREFIX}_({_TOKEN_ID.pattern})_[A-Za-z0-9_-]{{43}}")
MAX_TOKEN_LENGTH = 512  # longer than anything we accept: not worth hashing


class Scope(StrEnum):
    """What a token may do; each scope includes the ones before it."""

    READ = "read"  # lists, a job, its progress and logs, metrics, config, polling status, validate, WebSocket
    OPERATE = "operate"  # also sync, the polling setting, cancel
    ADMIN = "admin"  # also token management

    @property
    def rank(self) -> int:
        return list(Scope).index(self)

    def allows(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    token_id: str | None  # None for a bootstrap token
    name: str
    scope: Scope


BOOTSTRAP = "bootstrap"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def matches_any(token: str, accepted_digests: Iterable[str]) -> bool:
    digest = token_digest(token)
    # Compare against every digest so timing says nothing about which one matched.
    matches = [hmac.compare_digest(digest, accepted) for accepted in accepted_digests]
    return any(matches)


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def new_token() -> tuple[str, str]:
    """A fresh (token id, plaintext token)."""
    token_id = secrets.token_hex(6)
    return token_id, f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"


def issued_token_id(token: str) -> str | None:
    """The id inside an issued token; None when `token` does not have an issued token's form."""
    match = _ISSUED.fullmatch(token)
    return match.group(1) if match else None


def is_token_id(value: str) -> bool:
    return _TOKEN_ID.fullmatch(value) is not None
