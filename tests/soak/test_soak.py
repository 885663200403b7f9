"""A short soak in `make test`: 60 trainings over 30 s (about a minute), every check of the full one (`make soak`).

It fails one provider answer in ten rather than the full soak's one in five: a request that meets five
faults in a row answers 502 (the provider failed), which at one in five came once in a few short runs;
at one in ten it is about 30 times rarer. `make soak` keeps one in five.
"""

from __future__ import annotations

import pytest

from tests.soak.soak import SoakPlan, run_soak

pytestmark = pytest.mark.e2e


def test_a_short_soak(tmp_path) -> None:
    result = run_soak(SoakPlan(jobs=60, window=30.0, fault_rate=0.1, clients=2, budget=150.0), tmp_path, log=print)
    print(result.line)
    assert not result.problems, "\n".join([result.line, *result.problems])
