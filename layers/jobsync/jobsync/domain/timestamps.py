"""Provider timestamps: kept as given, parsed only to order and measure them.

Replicate mixes microsecond and nanosecond precision
(`2024-09-10T05:10:35.195332906Z`); Python's parser takes at most six digits.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def sortable(value: str | None) -> str:
    """A fixed-width UTC form that sorts like time; '' for a missing or unreadable stamp."""
    parsed = parse_timestamp(value)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if parsed else ""


def seconds_between(start: str | None, end: str | None) -> float | None:
    began, ended = parse_timestamp(start), parse_timestamp(end)
    if began is None or ended is None or ended < began:
        return None
    return round((ended - began).total_seconds(), 3)


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
