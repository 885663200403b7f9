"""A short soak in `make test`: 60 trainings over 30 s (about a minute), every check of the full one (`make soak`)."""

from __future__ import annotations

import pytest

from tests.soak.soak import SoakPlan, run_soak

pytestmark = pytest.mark.e2e


def test_a_short_soak(tmp_path) -> None:
    result = run_soak(SoakPlan(jobs=60, window=30.0, clients=2, budget=150.0), tmp_path, log=print)
    print(result.line)
    assert not result.problems, "\n".join([result.line, *result.problems])
