"""With JOBSYNC_WEBHOOK_URL set, polling turns itself off and the simulator's signed webhooks keep jobs current."""

from __future__ import annotations

import contextlib

import pytest

from tests.stack_process import LocalStack, api, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = LocalStack(
        tmp_path_factory.mktemp("webhook-stack"),
        token="hook-token",
        webhook_secret="",
        forked=True,
        JOBSYNC_SIMULATOR_SPEED="20",
    )
    # The secret is left to the service to fetch from the simulator, as from Replicate.
    stack.extra_env["JOBSYNC_WEBHOOK_URL"] = f"{stack.url}/api/webhooks/replicate"
    stack.start()
    yield stack
    stack.stop()


def test_webhooks_replace_polling(stack):
    assert api(stack, "GET", "/api/cloud/polling/status").json() == {
        "is_active": False,
        "preference": None,
        "last_tick": {"at": None, "error": None},  # polling never ran
    }
    assert api(stack, "GET", "/api/cloud/config").json()["webhooks"] == {"configured": True}
    # No sync, no polling: every job here arrived by a signed webhook from the simulator.
    jobs: list[dict] = []

    def a_running_and_a_completed_job() -> bool:
        jobs[:] = api(stack, "GET", "/api/cloud/jobs").json()["jobs"]
        return any(job["status"] == "completed" for job in jobs) and any(job["status"] == "running" for job in jobs)

    with contextlib.suppress(AssertionError):  # the assertion below says what was seen
        wait_until(a_running_and_a_completed_job, "a running and a completed job")
    statuses = {job["status"] for job in jobs}
    assert {"running", "completed"} <= statuses, statuses
