"""Ids, tokens and digits derived from the simulator's seed.

Everything the simulator makes up comes from here, hashed from the seed and a
name, so the same seed gives the same ids, URLs and timestamps after a restart.
"""

from __future__ import annotations

import base64
import hashlib


def digest(seed: int, *parts: object) -> bytes:
    return hashlib.sha256("/".join(str(part) for part in (seed, *parts)).encode()).digest()


def replicate_id(seed: int, *parts: object) -> str:
    """26 lowercase base32 characters, like `rrr4z55ocneg2rdh4bh4q9c6pc`."""
    return base64.b32encode(digest(seed, "id", *parts)).decode("ascii").lower()[:26]


def token(seed: int, *parts: object, length: int = 40) -> str:
    return base64.b32encode(digest(seed, "token", *parts)).decode("ascii").lower()[:length]


def hex_digest(seed: int, *parts: object) -> str:
    return digest(seed, "hex", *parts).hex()


def extra_ns(seed: int, *parts: object) -> int:
    """Three more digits for a nanosecond-precision timestamp (never 000)."""
    return 1 + int.from_bytes(digest(seed, "ns", *parts)[:4], "big") % 999
