"""Bearer tokens are checked against sha256 digests: the tokens themselves are never stored."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_is_valid(token: str | None, accepted_digests: Iterable[str]) -> bool:
    if not token:
        return False
    digest = token_digest(token)
    # Compare against every digest so timing says nothing about which one matched.
    matches = [hmac.compare_digest(digest, accepted) for accepted in accepted_digests]
    return any(matches)


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
