"""Operating jobs on `make run`'s stack: cancel through the API (heard on the WebSocket, kept across a restart,
the simulator's job stopped) and the status history it leaves."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.conftest import SECRET
from tests.stack_process import PATIENCE_SECONDS, REQUEST_SECONDS, LocalStack, api, fresh_source_ip, sync

pytestmark = pytest.mark.e2e

# The scripted training that runs for about 20 minutes at the simulator's real speed (scenarios.py).
LONG_TRAINING_CONFIG = "portrait-lora-v3"
SIMULATOR_TOKEN = "r8_jobsync_simulator"  # local/stack.py's


def simulator_view(stack: LocalStack, job_id: str) -> dict[str, Any]:
    """The job as the stack's simulator itself shows it now (its address is in the stack's log)."""
    base = re.findall(r"Replicate simulator on (\S+)", stack.log())[-1]
    answer = httpx.get(
        f"{base}/trainings/{job_id}", headers={"Authorization": f"Bearer {SIMULATOR_TOKEN}"}, timeout=REQUEST_SECONDS
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    """A stack of this module's own (it cancels the simulator's long training), the simulator at real speed so
    that training is still running whatever the machine's load."""
    stack = LocalStack(
        tmp_path_factory.mktemp("operate-stack"),
        token="e2e-token",
        webhook_secret=SECRET,
        SIMPLETUNER_JOB_POLL_INTERVAL="1",
        JOBSYNC_SNAPSHOT_SECONDS="1",
    )
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def long_training(stack: LocalStack) -> str:
    sync(stack)
    running = api(stack, "GET", "/api/cloud/jobs", params={"status": "running", "limit": "500"}).json()["jobs"]
    ids = [job["job_id"] for job in running if job["config_name"] == LONG_TRAINING_CONFIG]
    assert ids, running
    return ids[0]


async def _cancel_and_hear(stack: LocalStack, job_id: str) -> tuple[int, dict, dict]:
    async with websockets.connect(
        f"{stack.ws_url}?token={stack.token}", local_addr=(fresh_source_ip(), 0), open_timeout=PATIENCE_SECONDS
    ) as socket:
        answer = await asyncio.to_thread(api, stack, "POST", f"/api/cloud/jobs/{job_id}/cancel")
        deadline = time.monotonic() + PATIENCE_SECONDS
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=deadline - time.monotonic()))
            if message.get("type") == "job_status_changed" and message.get("job_id") == job_id:
                return answer.status_code, answer.json(), message


def test_cancel_ends_the_job_everywhere_and_only_once(stack: LocalStack, long_training: str) -> None:
    status, body, heard = asyncio.run(_cancel_and_hear(stack, long_training))

    assert status == 200, body
    job = body["job"]
    assert (job["job_id"], job["status"], job["is_terminal"]) == (long_training, "cancelled", True)
    assert [step["status"] for step in job["history"]] == ["queued", "running", "cancelled"]
    stamps = [step["at"] for step in job["history"]]
    assert stamps == sorted(stamps) and all(stamp.endswith("Z") for stamp in stamps)
    assert (heard["status"], heard["previous_status"]) == ("cancelled", "running")

    again = api(stack, "POST", f"/api/cloud/jobs/{long_training}/cancel")
    assert (again.status_code, again.json()["error"]) == (409, "job_already_ended")
    unknown = api(stack, "POST", "/api/cloud/jobs/no-such-job/cancel")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "job_not_found")

    # The simulator stopped the job (its logs stop growing: tests/unit/test_replicate_simulator.py, and the
    # restart below, seconds later).
    assert simulator_view(stack, long_training)["status"] == "canceled"


def test_cancel_needs_the_operate_scope(stack: LocalStack, long_training: str) -> None:
    created = api(stack, "POST", "/api/tokens", json={"name": "e2e-reader", "scope": "read"})
    assert created.status_code == 200, created.text
    reader = created.json()["token"]
    refused = httpx.post(
        f"{stack.url}/api/cloud/jobs/{long_training}/cancel",
        headers={"Authorization": f"Bearer {reader}"},
        timeout=REQUEST_SECONDS,
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")


def test_a_cancel_survives_a_restart_of_the_stack(stack: LocalStack, long_training: str) -> None:
    before = api(stack, "GET", f"/api/cloud/jobs/{long_training}").json()["job"]
    assert before["status"] == "cancelled"
    logs_then = simulator_view(stack, long_training)["logs"]
    assert stack.stop() == 0
    stack.start()

    after = api(stack, "GET", f"/api/cloud/jobs/{long_training}").json()["job"]
    assert after["status"] == "cancelled" and after["history"] == before["history"]
    # The simulator kept the cancel too: after its restart the training is still canceled, not running again.
    now = simulator_view(stack, long_training)
    assert now["status"] == "canceled" and now["logs"] == logs_then
