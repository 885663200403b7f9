"""The local stack the end-to-end tests share, and fresh ones for the tests that stop or kill theirs."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.stack_process import LocalStack, api

SECRET = "whsec_" + base64.b64encode(b"end-to-end-webhook-secret-bytes!").decode()


def simulator_stack(
    tmp_path_factory: pytest.TempPathFactory, name: str, poll_seconds: str = "1", snapshot_seconds: str = "1"
) -> LocalStack:
    """`make run`'s stack with its simulator ten times faster, polling every second, saving every second
    (unless told otherwise: each tick costs CPU for as long as the stack runs)."""
    return LocalStack(
        tmp_path_factory.mktemp(name),
        token="e2e-token",
        webhook_secret=SECRET,
        forked=True,
        JOBSYNC_SIMULATOR_SPEED="10",
        SIMPLETUNER_JOB_POLL_INTERVAL=poll_seconds,
        JOBSYNC_SNAPSHOT_SECONDS=snapshot_seconds,
    )


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One simulator stack per test process, never stopped before the end, for every test that only uses it.

    Such a test leaves the stack as it found it (a setting it changes is changed back), opens its
    WebSockets from its own source address (`fresh_source_ip`), and names the jobs it creates.

    Polling is off (the dashboard's setting): this stack runs as long as its test process (in `make test` minutes
    after its last test), and with the simulator's history stored each tick cost about 0.2 s of CPU. The one test
    that needs the poller's tick (test_job_logs) turns it on, and back off.
    """
    # Ticking every 5 s, not every second, for that test; saving every 5 s: no test on it waits on a snapshot.
    stack = simulator_stack(tmp_path_factory, "shared-stack", poll_seconds="5", snapshot_seconds="5")
    stack.start()
    turned_off = api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": False})
    assert turned_off.status_code == 200, turned_off.text
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One simulator stack per test module, for its tests that stop, restart or kill it (see own_stack)."""
    # Saving every second (a test kills it once a snapshot has seen its sockets); polling every 30 s: no test that
    # stops or kills its stack waits on the poller.
    stack = simulator_stack(tmp_path_factory, "own-stack", poll_seconds="30")
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def own_stack(module_stack: LocalStack) -> LocalStack:
    """A simulator stack no other module uses, running when the test begins, for a test that stops, restarts or
    kills it: its module's, started again if the test before left it stopped (a start costs seconds of CPU;
    what needs a fresh one is a fresh state folder, which no such test needs).

    Such a test names the jobs it creates, opens its WebSockets from its own source address
    (`fresh_source_ip`), changes back a setting it changes, and reads only the part of the log its own steps wrote.
    """
    if module_stack.process is None or module_stack.process.poll() is not None:
        module_stack.start()
    return module_stack
