"""`make run` as its user meets it: what the terminal shows, where metrics go, a restart, and Ctrl-C."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from local.template import functions, load_template
from tests.stack_process import LocalStack

pytestmark = pytest.mark.e2e


def test_a_session_a_restart_and_ctrl_c(tmp_path):
    stack = LocalStack(tmp_path, token="", webhook_secret="", JOBSYNC_SIMULATOR_SPEED="10")
    stack.start()
    try:
        first = stack.log()
        # Startup says what it is doing, then the banner gives the token as a line to paste.
        handlers = {(spec.code_uri, spec.handler) for spec in functions(load_template()).values()}
        loading = f"loading the {len(handlers)} functions"
        for step in ("starting moto's DynamoDB", "starting the Replicate simulator", loading):
            assert f"local.stack INFO {step}" in first
        assert re.search(rf"^  export TOKEN={re.escape(stack.token)}$", first, re.MULTILINE)
        assert "press Sync" in first

        synced = httpx.post(f"{stack.url}/api/cloud/jobs/sync", headers=stack.headers(), timeout=120).json()["synced"]
        assert synced > 200
        started = time.monotonic()
        assert stack.stop() == 0
        stopped_in = time.monotonic() - started
    finally:
        stack.stop()
    assert stopped_in < 2, f"Ctrl-C took {stopped_in:.1f}s"

    # The functions' CloudWatch metric lines went to the state folder, none to the terminal.
    log = stack.log()
    assert '"_aws"' not in log
    metrics = (tmp_path / "simulator" / "metrics.log").read_text().splitlines()
    assert metrics and all("_aws" in json.loads(line) for line in metrics)
    assert any("JobsDiscovered" in json.loads(line) for line in metrics)

    stack.start()
    try:
        again = stack.log()[len(log) :]
        stored = re.search(r"^(\d+) jobs stored from earlier runs; the poller keeps them current\.$", again, re.M)
        assert stored is not None and int(stored.group(1)) >= synced
        assert "press Sync" not in again
        assert f"export TOKEN={stack.token}" in again
    finally:
        assert stack.stop() == 0
