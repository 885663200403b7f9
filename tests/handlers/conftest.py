"""Fixtures of the handler tests that only they need."""

from __future__ import annotations

import time
from typing import Any

import pytest


class PollerClock:
    """Stands in for the poller's `time` module: its clock starts at the real time (to the second)
    and moves only when the poller sleeps, so a run's ticks never depend on how long each one took."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def poller_clock(monkeypatch) -> PollerClock:
    from jobsync.services import polling

    clock = PollerClock()
    monkeypatch.setattr(polling, "time", clock)
    return clock
