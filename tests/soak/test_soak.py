"""A short soak in `make test`: 12 trainings started over 16 s at 20 times real speed, every check of the full
one (`make soak`), with the same share of failing provider answers (one in five, never more than three in a
row: see tests/soak/simulator.py) and a kill -9 early (at 4.8 s, once the first syncs have most likely brought
the history in: a kill during that import leaves it to resume after its one-minute lease), so that most
trainings end after the restart, where the WebSocket clients listen. Every wait in the run is a wait on a
condition (the story's end, the relay's queue, the stack agreeing with the simulator). About 15-20 s of CPU.
"""

from __future__ import annotations

import pytest

from tests.soak.soak import SoakPlan, run_soak

pytestmark = pytest.mark.e2e


def test_a_short_soak(tmp_path) -> None:
    plan = SoakPlan(jobs=12, window=16.0, speed=20.0, fault_rate=0.2, kill_at=0.3, clients=2, budget=240.0)
    result = run_soak(plan, tmp_path, log=print)
    print(result.line)
    assert not result.problems, "\n".join([result.line, *result.problems])
    # What the checks above judged was there to judge: every training ran to its end, the stack was down
    # a while, and some deliveries were signed wrongly (the relay's draws are seeded: its 6th webhook is
    # the first forged one, and 12 trainings send at least 24).
    assert result.trainings_ended == plan.jobs
    assert result.down_seconds > 0
    assert result.forged > 0
