"""How much of a job's log jobsync keeps, and which of its lines are new: pure text work.

Replicate deletes a job's logs about an hour after it ends, and a log can grow
to megabytes, so the service keeps the newest lines that fit in
`KEPT_LOG_BYTES` (UTF-8), whole lines only. A line that alone is longer than
the budget keeps its head, where steps and bars are printed.

A provider hands over at most the last `PROVIDER_LOG_WINDOW` characters of a
log (providers/replicate_mapping.py's LOG_LIMIT): a text that long was cut, so
its first line is a fragment (dropped) and older lines exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobsync.domain.progress import split_log_lines

# The last 64 KiB of each job's log, in whole lines (the README's "Logs" section says so).
KEPT_LOG_BYTES = 64 * 1024
PROVIDER_LOG_WINDOW = 65_536
# New lines are found after the last lines already seen (a log only grows at its end).
_ANCHOR_LINES = 3


@dataclass(frozen=True)
class LogTail:
    """The newest lines of a log, oldest first, and whether the log has older lines than these."""

    lines: tuple[str, ...]
    has_older: bool = False

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def log_lines(text: str | None) -> LogTail:
    """Every whole line of a provider's log text (the fragment a cut window starts with left out)."""
    lines = split_log_lines(text)
    if text is None or len(text) < PROVIDER_LOG_WINDOW:
        return LogTail(tuple(lines))
    if lines and text[0] not in "\r\n":
        lines = lines[1:]
    return LogTail(tuple(lines), has_older=True)


def log_tail(text: str | None, max_bytes: int = KEPT_LOG_BYTES) -> LogTail:
    """The newest whole lines of `text` that fit in `max_bytes` of UTF-8 (joined by newlines)."""
    whole = log_lines(text)
    kept: list[str] = []
    used = 0
    for line in reversed(whole.lines):
        size = len(line.encode("utf-8")) + (1 if kept else 0)  # the joining "\n"
        if used + size > max_bytes:
            if not kept and max_bytes > 0:
                kept.append(line.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))
            break
        kept.append(line)
        used += size
    return LogTail(tuple(reversed(kept)), has_older=whole.has_older or len(kept) < len(whole.lines))


def new_lines(seen: tuple[str, ...], now: tuple[str, ...]) -> list[str]:
    """The lines of `now` after those already `seen` (both the newest lines of one growing log).

    The last lines seen are looked for in `now`, newest first; what follows them is new. When they are
    not there (the log moved on by more than a tail), every line of `now` is new.
    """
    if not seen:
        return list(now)
    anchor = seen[-_ANCHOR_LINES:]
    size = len(anchor)
    for end in range(len(now), size - 1, -1):
        if now[end - size : end] == anchor:
            return list(now[end:])
    # The window may have moved past the start of the anchor: `now` then begins with its end.
    for overlap in range(size - 1, 0, -1):
        if now[:overlap] == anchor[-overlap:]:
            return list(now[overlap:])
    return list(now)


def last_lines(lines: tuple[str, ...] | list[str], count: int) -> list[str]:
    """The newest `count` lines, oldest first."""
    return list(lines[-count:]) if count > 0 else []
