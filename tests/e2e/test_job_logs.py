"""A job's logs against `make run`'s stack: the logs route, and following the lines over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import websockets

from tests.e2e.conftest import SECRET
from tests.stack_process import PATIENCE_SECONDS, LocalStack, api, fresh_source_ip, send_signed_webhook

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(shared_stack) -> LocalStack:
    return shared_stack


def _job_id() -> str:
    return "e2elogs" + uuid.uuid4().hex[:16]


def _webhook(stack: LocalStack, job_id: str, status: str, logs: str) -> None:
    payload = {
        "id": job_id,
        "model": "e2e/log-trainer",
        "status": status,
        "created_at": "2026-11-28T10:00:00Z",
        "started_at": "2026-11-28T10:00:05Z",
        "completed_at": "2026-11-28T10:10:05Z" if status == "succeeded" else None,
        "metrics": {"predict_time": 600.0} if status == "succeeded" else {},
        "logs": logs,
        "error": None,
        "output": None,
    }
    answer = send_signed_webhook(stack.url, SECRET, payload, f"msg_{uuid.uuid4().hex}")
    assert answer.status_code == 200, answer.text


async def _next_message(socket, *wanted: str) -> dict:
    """The next message of a `wanted` type (status changes of other tests' jobs arrive too)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout=deadline - time.monotonic()))
        if message.get("type") in wanted:
            return message


def test_a_follower_receives_the_new_lines_as_they_are_read_and_the_logs_route_serves_them(stack):
    job_id = _job_id()
    _webhook(stack, job_id, "processing", "Loading dataset\nStep 1/10")

    async def scenario() -> tuple[dict, dict, dict]:
        url = f"{stack.ws_url}?token={stack.token}"
        async with websockets.connect(url, local_addr=(fresh_source_ip(), 0), open_timeout=PATIENCE_SECONDS) as socket:
            await socket.send(json.dumps({"action": "follow", "job_id": job_id}))
            following = await _next_message(socket, "following")
            # A webhook's logs are a read like any other: its new lines reach the follower.
            await asyncio.to_thread(_webhook, stack, job_id, "processing", "Loading dataset\nStep 1/10\nStep 2/10")
            lines = await _next_message(socket, "job_log_lines")
            await socket.send(json.dumps({"action": "unfollow", "job_id": job_id}))
            unfollowed = await _next_message(socket, "unfollowed")
            return following, lines, unfollowed

    following, lines, unfollowed = asyncio.run(scenario())

    assert following == {"type": "following", "job_id": job_id}
    assert lines == {"type": "job_log_lines", "job_id": job_id, "lines": ["Step 2/10"]}
    assert unfollowed == {"type": "unfollowed", "job_id": job_id}
    answer = api(stack, "GET", f"/api/cloud/jobs/{job_id}/logs", params={"tail": "2"})
    assert answer.status_code == 200
    # The simulator does not know this job (404): the route serves the kept tail.
    assert answer.json() == {"job_id": job_id, "lines": ["Step 1/10", "Step 2/10"], "truncated": True, "source": "kept"}


def test_an_ended_jobs_kept_tail_is_served_and_a_bad_tail_is_refused(stack):
    job_id = _job_id()
    _webhook(stack, job_id, "processing", "Step 1/2")
    _webhook(stack, job_id, "succeeded", "Step 1/2\nStep 2/2\nSaving checkpoint")

    body = api(stack, "GET", f"/api/cloud/jobs/{job_id}/logs").json()
    refused = api(stack, "GET", f"/api/cloud/jobs/{job_id}/logs", params={"tail": "2001"})

    assert body == {
        "job_id": job_id,
        "lines": ["Step 1/2", "Step 2/2", "Saving checkpoint"],
        "truncated": False,
        "source": "kept",
    }
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_input"


def test_a_socket_follows_at_most_ten_jobs(stack):
    job_ids = [_job_id() for _ in range(11)]
    for job_id in job_ids:
        _webhook(stack, job_id, "processing", "Step 1/2")

    async def scenario() -> list[dict]:
        url = f"{stack.ws_url}?token={stack.token}"
        answers = []
        async with websockets.connect(url, local_addr=(fresh_source_ip(), 0), open_timeout=PATIENCE_SECONDS) as socket:
            for job_id in job_ids:
                await socket.send(json.dumps({"action": "follow", "job_id": job_id}))
                answers.append(await _next_message(socket, "following", "error"))
        return answers

    answers = asyncio.run(scenario())

    assert [answer["type"] for answer in answers] == ["following"] * 10 + ["error"], answers
    assert answers[-1]["error"] == "too_many_follows"


def test_a_follower_of_a_simulator_training_gets_lines_with_no_dashboard_open(stack):
    from tests.stack_process import sync

    sync(stack)  # the newest pages are imported before it answers: the simulator's running training is there

    async def follow_one(job_id: str) -> dict:
        url = f"{stack.ws_url}?token={stack.token}"
        async with websockets.connect(url, local_addr=(fresh_source_ip(), 0), open_timeout=PATIENCE_SECONDS) as socket:
            await socket.send(json.dumps({"action": "follow", "job_id": job_id}))
            await _next_message(socket, "following")
            # Nobody reads this job's logs but the poller's tick, which reads followed jobs.
            while True:
                message = await _next_message(socket, "job_log_lines", "job_status_changed")
                if message.get("job_id") == job_id:
                    return message

    heard: list[dict] = []
    found = api(stack, "GET", "/api/cloud/polling/status").json()["preference"]
    api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": True})  # the shared stack's is off
    try:
        for _ in range(3):  # a training that ends before its next line is followed by the next one running
            running = api(stack, "GET", "/api/cloud/jobs", params={"status": "running", "sync_active": "true"}).json()
            assert running["jobs"], "the simulator always has a job training"
            latest = max(running["jobs"], key=lambda job: job["started_at"] or "")
            heard.append(asyncio.run(follow_one(latest["job_id"])))
            if heard[-1]["type"] == "job_log_lines":
                break
    finally:
        api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": found})  # back to what it was

    assert heard[-1]["type"] == "job_log_lines", heard
    assert heard[-1]["lines"] and all(isinstance(line, str) and line for line in heard[-1]["lines"])
