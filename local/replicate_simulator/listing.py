"""Pages of a job list the way Replicate cuts them: 100 newest first, opaque cursors, time filters."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime

from local.replicate_simulator.story import NS_PER_S, Job

PAGE_SIZE = 100


class BadRequest(ValueError):
    """A request the real API would refuse with 400."""


def encode_cursor(direction: str, key: tuple[int, str]) -> str:
    """`n` (older than `key`) or `p` (newer), made opaque the way Replicate's cursors are."""
    raw = f"{direction}.{key[0]}.{key[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, tuple[int, str]]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        direction, created, job_id = raw.split(".", 2)
        if direction not in ("n", "p") or not job_id:
            raise ValueError(raw)
        return direction, (int(created), job_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("Invalid cursor") from None


def page_of(candidates: list[Job], cursor: str | None) -> list[Job]:
    """The page `cursor` points at in `candidates` (sorted newest first); the first page without one."""
    if cursor is None:
        return candidates[:PAGE_SIZE]
    direction, key = decode_cursor(cursor)
    if direction == "n":  # the next (older) page: keys below the cursor
        return [job for job in candidates if job.sort_key < key][:PAGE_SIZE]
    newer = [job for job in candidates if job.sort_key > key]
    return newer[-PAGE_SIZE:]


_QUERY_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d{1,9})\d*)?)?"
    # A `+` sent unencoded in a query string arrives as a space.
    r"(?P<offset>[Zz]|[+\- ]\d{2}:?\d{2})?"
)


def parse_query_time(text: str) -> int:
    """`created_after`/`created_before` as integer nanoseconds since the epoch; ValueError if unreadable."""
    match = _QUERY_TIME.fullmatch(text.strip())
    if not match:
        raise ValueError(text)
    clock = match["time"] or "00:00:00"
    clock = clock if clock.count(":") == 2 else clock + ":00"
    offset = match["offset"] or "Z"
    offset = "+00:00" if offset in "Zz" else "+" + offset[1:] if offset[0] == " " else offset
    if len(offset) == 5:
        offset = offset[:3] + ":" + offset[3:]
    moment = datetime.fromisoformat(f"{match['date']}T{clock}{offset}")
    return int(moment.timestamp()) * NS_PER_S + int((match["fraction"] or "0").ljust(9, "0"))


def query_time(name: str, value: str) -> int:
    """A time filter's value in nanoseconds, or BadRequest naming the parameter."""
    try:
        return parse_query_time(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date-time, not {value[:60]!r}") from None
