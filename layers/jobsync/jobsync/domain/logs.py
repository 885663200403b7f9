"""How much of a job's log jobsync keeps, and which of its lines are new: pure text work.

Replicate deletes a job's logs about an hour after it ends, and a log can grow
to megabytes, so the service keeps the newest lines that fit in
`KEPT_LOG_BYTES` (UTF-8), whole lines only. A line that alone is longer than
the budget keeps its head, where steps and bars are printed.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobsync.domain.progress import split_log_lines

# The last 64 KiB of each job's log, in whole lines (the README's "Logs" section says so).
KEPT_LOG_BYTES = 64 * 1024


@dataclass(frozen=True)
class LogTail:
    """The newest lines of a log (oldest first) and how many lines the whole log had."""

    lines: tuple[str, ...]
    line_count: int

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def dropped_lines(self) -> bool:
        """True when older lines of the log are not in this tail."""
        return self.line_count > len(self.lines)


def log_tail(text: str | None, max_bytes: int = KEPT_LOG_BYTES) -> LogTail:
    """The newest whole lines of `text` that fit in `max_bytes` of UTF-8 (joined by newlines)."""
    lines = split_log_lines(text)
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        size = len(line.encode("utf-8")) + (1 if kept else 0)  # the joining "\n"
        if used + size > max_bytes:
            if not kept and max_bytes > 0:
                kept.append(line.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))
            break
        kept.append(line)
        used += size
    return LogTail(tuple(reversed(kept)), len(lines))


def new_lines(tail: LogTail, seen_before: int) -> list[str]:
    """The lines of `tail` that a log of `seen_before` lines did not have yet (the log only grows)."""
    fresh = tail.line_count - seen_before
    if fresh <= 0:
        return []
    return list(tail.lines[-fresh:])


def last_lines(lines: tuple[str, ...] | list[str], count: int) -> list[str]:
    """The newest `count` lines, oldest first."""
    return list(lines[-count:]) if count > 0 else []
