"""The local stack the end-to-end tests share, and fresh ones for the tests that stop or kill theirs."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.stack_process import LocalStack

SECRET = "whsec_" + base64.b64encode(b"end-to-end-webhook-secret-bytes!").decode()


def simulator_stack(tmp_path_factory: pytest.TempPathFactory, name: str) -> LocalStack:
    """`make run`'s stack with its simulator ten times faster, polling every second, saving every second."""
    return LocalStack(
        tmp_path_factory.mktemp(name),
        token="e2e-token",
        webhook_secret=SECRET,
        JOBSYNC_SIMULATOR_SPEED="10",
        SIMPLETUNER_JOB_POLL_INTERVAL="1",
        JOBSYNC_SNAPSHOT_SECONDS="1",
    )


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory) -> Iterator[LocalStack]:
    """One simulator stack per test process, never stopped before the end, for every test that only uses it.

    Such a test leaves the stack as it found it (a setting it changes is changed back), opens its
    WebSockets from its own source address (`fresh_source_ip`), and names the jobs it creates.
    """
    stack = simulator_stack(tmp_path_factory, "shared-stack")
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def own_stack(tmp_path_factory) -> Iterator[LocalStack]:
    """A fresh simulator stack for a test that stops, restarts or kills it."""
    stack = simulator_stack(tmp_path_factory, "own-stack")
    stack.start()
    yield stack
    stack.stop()
