"""How long the current Lambda invocation has left, for code that must stop before it is cut off.

Set once by the handler from Lambda's context; read by the provider client
(no retry that cannot finish) and by long loops (sync stops and keeps what it
has). Outside an invocation there is no deadline.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

# Kept free at the end of an invocation to answer and flush logs and metrics.
_RESERVE_SECONDS = 2.0
_deadline: ContextVar[float | None] = ContextVar("jobsync_deadline", default=None)


@contextmanager
def invocation_deadline(context: Any) -> Iterator[None]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    deadline = time.monotonic() + remaining() / 1000 - _RESERVE_SECONDS if remaining else None
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def seconds_left() -> float | None:
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()
