"""A short soak in `make test`: 24 trainings started over 30 s, every check of the full one (`make soak`),
with the same share of failing provider answers (one in five, never more than three in a row: see
tests/soak/simulator.py) and a kill -9 early (at 9 s), so that most trainings end after the restart, where
the WebSocket clients listen. About 30 s of CPU (the full soak: several minutes).
"""

from __future__ import annotations

import pytest

from tests.soak.soak import SoakPlan, run_soak

pytestmark = pytest.mark.e2e


def test_a_short_soak(tmp_path) -> None:
    plan = SoakPlan(jobs=24, window=30.0, fault_rate=0.2, kill_at=0.3, clients=2, budget=240.0)
    result = run_soak(plan, tmp_path, log=print)
    print(result.line)
    assert not result.problems, "\n".join([result.line, *result.problems])
