"""`make run`'s stack against a simulator that fails a third of its answers: syncs and the poller get through,
and no job ends because of a provider fault."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import SECRET
from tests.stack_process import PATIENCE_SECONDS, LocalStack, api, request

pytestmark = pytest.mark.e2e

# Every kind but timeouts (each would hold a request for the client's whole 15 s).
FAULTS = "429,429-retry-after,500,502,503,504,reset,truncated"


@pytest.fixture
def faulty_stack(tmp_path_factory):
    stack = LocalStack(
        tmp_path_factory.mktemp("faulty-stack"),
        token="e2e-token",
        webhook_secret=SECRET,
        forked=True,
        JOBSYNC_SIMULATOR_SPEED="10",
        SIMPLETUNER_JOB_POLL_INTERVAL="1",
        JOBSYNC_SIMULATOR_FAULT_RATE="0.3",
        JOBSYNC_SIMULATOR_FAULTS=FAULTS,
        JOBSYNC_SIMULATOR_FAULT_SEED="7",
    )
    stack.start()
    yield stack
    stack.stop()


def sync_through_faults(stack: LocalStack) -> dict | None:
    """A sync's answer, or None when a request kept meeting faults past its retries (a 502 that says so)."""
    answer = api(stack, "POST", "/api/cloud/jobs/sync")
    if answer.status_code == 502:
        assert answer.json()["error"] == "provider_error", answer.text
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()


def all_jobs(stack: LocalStack) -> list[dict]:
    jobs: list[dict] = []
    cursor = None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        page = api(stack, "GET", "/api/cloud/jobs", params=params).json()
        jobs += page["jobs"]
        cursor = page["next_cursor"]
        if not cursor:
            return jobs


def test_syncs_and_the_poller_get_through_provider_faults_and_end_no_job_for_them(faulty_stack):
    stack = faulty_stack
    found = []
    # Until a sync that went through says the whole history is in (the background import pauses at a
    # fault that outlasts its retries; the next sync starts it again from where it was).
    pause = 0.5
    for _ in range(120):
        answer = sync_through_faults(stack)
        if answer is not None:
            found.append(answer["synced"])
            if answer["history_complete"]:
                break
        time.sleep(pause)
        pause = min(2.0, pause * 1.5)  # each sync reads the simulator's newest pages: ask less often
    assert found and answer is not None and answer["history_complete"], found
    assert len(all_jobs(stack)) >= 230, found  # the simulator's whole history

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # ten seconds of poller ticks, once a second, meeting faults too
        assert request("GET", f"{stack.url}/api/health", timeout=PATIENCE_SECONDS).status_code == 200
        time.sleep(1)

    jobs = all_jobs(stack)
    # Nothing stored twice, and the counters agree (the syncs and the background import stored them all).
    assert (
        len(jobs) == len({job["job_id"] for job in jobs}) == api(stack, "GET", "/api/cloud/metrics").json()["job_count"]
    )
    forgotten = [job for job in jobs if "no longer knows" in (job.get("error_message") or "")]
    assert forgotten == []
    # The simulator's own failures carry its error; none is a transport or parsing message of ours.
    for job in jobs:
        if job["status"] == "failed":
            assert job["error_message"] and "Replicate GET" not in job["error_message"], job
