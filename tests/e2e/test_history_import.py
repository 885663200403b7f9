"""The background history import survives a crash of the local stack: nothing is lost, nothing imported twice.

The first sync reads one page per list (JOBSYNC_SYNC_FIRST_PAGES=1) and hands the rest of the simulator's
history to the history importer; the stack is killed with SIGKILL at once, while the import runs. The
import's cursor and lease are in DynamoDB (journaled before each write is answered), so once the lease
of the dead importer expires (5 s here) the next sync (or the poller's tick) starts it again from there.
"""

from __future__ import annotations

import signal

import pytest

from tests.e2e.conftest import SECRET
from tests.stack_process import LocalStack, api, sync, sync_until_quiet

pytestmark = pytest.mark.e2e

SIMULATOR_HISTORY = 230  # the simulator's finished predictions; its trainings come on top


def test_a_history_import_cut_by_a_crash_of_the_stack_ends_after_the_restart(tmp_path):
    stack = LocalStack(
        tmp_path,
        token="e2e-token",
        webhook_secret=SECRET,
        forked=True,
        JOBSYNC_SYNC_FIRST_PAGES="1",
        JOBSYNC_HISTORY_IMPORT_LEASE_SECONDS="5",
        # The poller at its default 30 s: its tick at each start is the only one the test sees, and the syncs of
        # sync_until_quiet resume the import once the lease expires (a tick a second cost 0.1 s of CPU a second).
    )
    stack.start()
    try:
        first = sync(stack)
        assert first["history_complete"] is False and first["synced"] > 0, first
        assert stack.process is not None
        stack.process.send_signal(signal.SIGKILL)  # mid-import: no Ctrl-C, no hand-off drained
        stack.process.wait()

        stack.start()
        before = api(stack, "GET", "/api/cloud/metrics").json()["job_count"]
        if before > SIMULATOR_HISTORY:
            pytest.skip(f"the import had finished before the kill ({before} jobs): nothing to resume")
        sync_until_quiet(stack)

        jobs = api(stack, "GET", "/api/cloud/jobs", params={"limit": "500"}).json()["jobs"]
        metrics = api(stack, "GET", "/api/cloud/metrics").json()
        # The import went on after the restart (it had not got past the simulator's history before),
        # each job stored once and counted once.
        assert len(jobs) == len({job["job_id"] for job in jobs}) == metrics["job_count"] > SIMULATOR_HISTORY
    finally:
        stack.stop()
