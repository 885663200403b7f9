"""A bounded thread pool for work that waits on the network (provider requests, DynamoDB writes).

Tasks run in a copy of the submitter's context: the invocation's deadline
(jobsync.deadline) is a context variable, and a provider request made on a
pool thread must fit in the same invocation as one made inline.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from jobsync.store import dynamo

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _warm_thread() -> None:
    # The DynamoDB client every thread shares, made before the first task if no thread made it yet.
    dynamo.client()


class BoundedPool:
    """At most `workers` tasks at once, each in the context it was submitted from."""

    def __init__(self, workers: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=_warm_thread)

    def submit(self, task: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        context = contextvars.copy_context()

        def run() -> _T:
            return context.run(task, *args, **kwargs)

        return self._executor.submit(run)

    def __enter__(self) -> BoundedPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
