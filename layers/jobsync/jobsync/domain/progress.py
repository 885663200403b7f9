"""Stage, progress and ETA of a running job, read from its recent log lines.

Pure text work: the provider's `logs` field goes in, what the inline-progress
answer shows comes out. The rules are the contract's (see CONTRACT.md); the
log formats they must survive are SimpleTuner's (`Step 1500/5000 - loss: ...`)
and tqdm bars that rewrite themselves with `\\r` and carry a description in
front (`flux_train_replicate:  83%|████████▎ | 2482/3000 [43:27<09:04, ...]`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

LAST_LOG_LIMIT = 80

# CSI sequences (colours, tqdm's cursor-up for nested bars) and two-byte escapes:
# terminal control, not log text; left in, they would fill `last_log` with noise.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_LINE_BREAK = re.compile(r"[\r\n]")

# Stage rules, in the contract's order: the first one that matches a line wins.
_STAGE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Preprocessing", re.compile(r"preprocessing|loading", re.IGNORECASE)),
    ("Warmup", re.compile(r"warming up|warmup", re.IGNORECASE)),
    ("Validation", re.compile(r"validat", re.IGNORECASE)),
    ("Saving checkpoint", re.compile(r"checkpoint", re.IGNORECASE)),
    ("Training", re.compile(r"step|epoch", re.IGNORECASE)),
)
_TRAINING = "Training"


def _counter(word: str) -> re.Pattern[str]:
    # `Step 1500/5000`, `step: 1500/5000`, `global_step=3/10`, `Epoch [2/10]`.
    # The word must stand alone ("stepped" is no step) and be followed by N/M,
    # so prose such as "Loading 3 steps" carries no progress.
    return re.compile(
        rf"(?<![a-z]){word}s?(?![a-z])\s*[:=#]?\s*[\[(]?\s*(?P<done>\d+)\s*/\s*(?P<total>\d+)",
        re.IGNORECASE,
    )


_STEP = _counter("step")
_EPOCH = _counter("epoch")
_CLOCK = r"\d+(?::\d{2}){1,2}"
# tqdm's layout is `{desc}: {pct}%|{bar}| {n}/{total} [{elapsed}<{remaining}, ...]`.
# Not anchored at the line start: trainers put a description before the bar.
# The counts are taken, never the percentage, which tqdm rounds to whole numbers.
_BAR = re.compile(
    r"\d{1,3}(?:\.\d+)?%\|[^|]*\|\s*(?P<done>\d+(?:\.\d+)?)\s*/\s*(?P<total>\d+(?:\.\d+)?)"
    rf"(?:\s*\[\s*(?P<elapsed>{_CLOCK})\s*<\s*(?P<remaining>{_CLOCK})?)?"
)


@dataclass(frozen=True)
class InlineProgress:
    stage: str | None
    last_log: str | None
    progress: float | None
    eta_seconds: float | None = None


NO_PROGRESS = InlineProgress(stage=None, last_log=None, progress=None, eta_seconds=None)


def _sanitize(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates (from JSON `\\ud800` escapes) become U+FFFD.

    A round trip through UTF-16 with `surrogatepass` joins surrogate pairs into
    their real character and replaces only the lone halves.
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def split_log_lines(text: str | None) -> list[str]:
    """Non-empty log lines, oldest first, split at `\\n` and at tqdm's `\\r` rewrites."""
    if not text:
        return []
    clean = _ANSI_ESCAPE.sub("", _sanitize(text))
    return [line for line in (part.rstrip() for part in _LINE_BREAK.split(clean)) if line]


def truncate_line(line: str, limit: int = LAST_LOG_LIMIT) -> str:
    """`line` cut to `limit` characters, the cut marked with `...` (the result is exactly `limit` long)."""
    if len(line) <= limit:
        return line
    return line[: max(limit - 3, 0)] + "..."


def keep_tail(text: str | None, max_lines: int = 200, max_chars: int = 16_000) -> str:
    """The newest lines of a log, at most `max_lines` lines and `max_chars` characters.

    Provider logs vanish an hour after a job ends and can grow to megabytes, so
    the service stores this bounded tail. A newest line longer than the whole
    budget keeps its head: that is where steps and bars are printed.
    """
    if max_lines <= 0 or max_chars <= 0:
        return ""
    kept: list[str] = []
    used = 0
    for line in reversed(split_log_lines(text)[-max_lines:]):
        cost = len(line) + (1 if kept else 0)  # the joining "\n"
        if used + cost > max_chars:
            if not kept:
                kept.append(line[:max_chars])
            break
        kept.append(line)
        used += cost
    return "\n".join(reversed(kept))


def line_stage(line: str) -> str | None:
    for stage, rule in _STAGE_RULES:
        if rule.search(line):
            return stage
    return _TRAINING if _BAR.search(line) else None


def _percent(done: str, total: str) -> float | None:
    finished, planned = float(done), float(total)
    # Absurdly long digit runs overflow to inf; they mean nothing, not 100 %.
    if planned == 0 or not (math.isfinite(finished) and math.isfinite(planned)):
        return None
    return round(min(max(100 * finished / planned, 0.0), 100.0), 2)


def _clock_seconds(clock: str | None) -> float | None:
    """tqdm's `MM:SS` or `H:MM:SS` as seconds; None for its unknown `?`."""
    if not clock:
        return None
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    return float(seconds)


def _last(pattern: re.Pattern[str], line: str) -> re.Match[str] | None:
    # Within one line the text further right was written later.
    matches = list(pattern.finditer(line))
    return matches[-1] if matches else None


def line_progress(line: str) -> tuple[float | None, float | None] | None:
    """(progress, eta_seconds) when `line` carries a progress pattern, else None.

    `step N/M` beats `epoch N/M` beats a bar: an epoch count or a bar on the
    same line as a step count is coarser or counts something else. A bar next
    to `Epoch a/b` often counts the batches of one epoch, so the epoch count is
    the safer overall figure. The ETA is only given when the bar itself decided.
    """
    for pattern in (_STEP, _EPOCH):
        match = _last(pattern, line)
        if match:
            return _percent(match["done"], match["total"]), None
    bar = _last(_BAR, line)
    if bar:
        return _percent(bar["done"], bar["total"]), _clock_seconds(bar["remaining"])
    return None


def parse_progress(text: str | None) -> InlineProgress:
    """What the inline-progress answer shows for a log; all None for an empty one.

    Walks from the newest line back: the newest line that matches a stage rule
    decides the stage, the newest line that carries a progress pattern decides
    progress and ETA, each independently of the other.
    """
    lines = split_log_lines(text)
    if not lines:
        return NO_PROGRESS
    stage: str | None = None
    found: tuple[float | None, float | None] | None = None
    for line in reversed(lines):
        stage = stage or line_stage(line)
        found = found or line_progress(line)
        if stage and found:
            break
    progress, eta = found or (None, None)
    return InlineProgress(stage=stage, last_log=truncate_line(lines[-1]), progress=progress, eta_seconds=eta)
