"""Notifications against `make run`'s stack: JOBSYNC_NOTIFY_WEBHOOK_URL gets exactly one POST per job that ends
while the stack watches (by the poller, or by a cancel), with the job's fields, and each is printed to the log."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jobsync.domain.timestamps import parse_timestamp
from tests.e2e.conftest import SECRET
from tests.stack_process import LocalStack, api, sync, wait_until

TERMINAL = {"completed", "failed", "cancelled"}
# The simulator's trainings cost a few cents at 20 times its speed: some cross this, some do not.
THRESHOLD_USD = 0.03


class Receiver:
    """A local incoming-webhook endpoint that records every POST body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


@pytest.fixture
def notifying_stack(tmp_path_factory, receiver) -> Iterator[LocalStack]:
    stack = LocalStack(
        tmp_path_factory.mktemp("notify-stack"),
        token="e2e-token",
        webhook_secret=SECRET,
        forked=True,
        JOBSYNC_SIMULATOR_SPEED="20",
        SIMPLETUNER_JOB_POLL_INTERVAL="1",
        JOBSYNC_NOTIFY_WEBHOOK_URL=receiver.url,
        JOBSYNC_NOTIFY_COST_THRESHOLD_USD=str(THRESHOLD_USD),
    )
    stack.start()
    yield stack
    stack.stop()


def all_jobs(stack: LocalStack) -> dict[str, dict[str, Any]]:
    answer = api(stack, "GET", "/api/cloud/jobs", params={"limit": "500"})
    assert answer.status_code == 200, answer.text
    return {job["job_id"]: job for job in answer.json()["jobs"]}


def age_seconds(job: dict[str, Any]) -> float:
    ended = parse_timestamp(job["completed_at"])
    assert ended is not None, job
    return (datetime.now(timezone.utc) - ended).total_seconds()


def jobs_now(stack: LocalStack, job_ids: set[str]) -> dict[str, dict[str, Any]]:
    """These jobs as the API has them now: what a wait asks for, a few jobs, not the whole list of hundreds."""
    found = {}
    for job_id in job_ids:
        answer = api(stack, "GET", f"/api/cloud/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        found[job_id] = answer.json()["job"]
    return found


def wait_for(condition, what: str) -> None:
    wait_until(condition, what)


def test_one_post_per_job_that_ends_with_its_fields(notifying_stack: LocalStack, receiver: Receiver):
    stack = notifying_stack
    sync(stack)

    # The sync starts no page after its first second and leaves the rest to the background import: on a loaded
    # machine it may answer with the trainings' page alone. The provider's old predictions (ended hours ago, which
    # must not be announced) are waited for, whichever of the two stores them.
    def with_old_history() -> dict[str, dict[str, Any]] | None:
        jobs = all_jobs(stack)
        old = [job for job in jobs.values() if job["status"] in TERMINAL and age_seconds(job) > 20 * 60]
        return jobs if len(old) >= 50 else None

    before = wait_until(with_old_history, "a page of the provider's old predictions")
    active = {job_id for job_id, job in before.items() if job["status"] not in TERMINAL}
    assert len(active) >= 3, before  # the simulator's scripted trainings

    # Some end by themselves (the poller sees them end), the rest by a cancel: the test need not wait for the
    # simulator's longest training.
    def ended_by_themselves() -> set[str]:
        return {job_id for job_id, job in jobs_now(stack, active).items() if job["status"] in TERMINAL}

    wait_for(lambda: len(ended_by_themselves()) >= 2, "two of the simulator's trainings to end")
    cancelled = sorted(active - ended_by_themselves())
    for job_id in cancelled:
        answer = api(stack, "POST", f"/api/cloud/jobs/{job_id}/cancel")
        assert answer.status_code in (200, 409), answer.text  # 409: it ended meanwhile

    def every_watched_job_ended_and_was_posted() -> bool:
        jobs = jobs_now(stack, active)
        posted = {body["job_id"] for body in receiver.received()}
        return all(jobs[job_id]["status"] in TERMINAL for job_id in active) and active <= posted

    wait_for(every_watched_job_ended_and_was_posted, "every watched job to end and be posted")
    sync(stack)  # another writer over the same ended jobs: nothing more is sent
    wait_for(lambda: stack.log().count("notification: ") >= len(active), "the log lines")

    bodies = receiver.received()
    jobs = all_jobs(stack)
    per_job = Counter((body["job_id"], body["type"]) for body in bodies)
    assert all(count == 1 for count in per_job.values()), per_job
    ended = {body["job_id"]: body for body in bodies if body["type"] == "job_ended"}
    # Of the jobs the first sync found ended, those that ended in the last minutes are news (the simulator's
    # scripted trainings, its clock 20 times faster); its history of predictions, hours old, is not.
    ended_before = {job_id: job for job_id, job in before.items() if job["status"] in TERMINAL}
    recent = {job_id for job_id, job in ended_before.items() if age_seconds(job) < 10 * 60}
    old = {job_id for job_id, job in ended_before.items() if age_seconds(job) > 20 * 60}
    assert len(old) >= 50 and not set(ended) & old
    assert active | recent <= set(ended) <= active | recent | (set(jobs) - set(before))
    assert cancelled and any(ended[job_id]["status"] == "cancelled" for job_id in cancelled)
    for job_id, body in ended.items():
        job = jobs[job_id]
        assert body["status"] == job["status"] and body["model"] == job["model"]
        assert body["duration_seconds"] == job["duration_seconds"] and body["cost_usd"] == job["cost_usd"]
        assert body["job_url"] == f"{stack.url}/#/jobs/{job_id}"
        assert body["text"].startswith((":white_check_mark:", ":x:", ":no_entry_sign:"))
        assert f"`{job_id}`" in body["text"] and body["blocks"]
        assert f"job {job_id}" in stack.log()  # printed to the stack's log
    costly = {body["job_id"]: body for body in bodies if body["type"] == "job_cost_threshold_crossed"}
    expected = {job_id for job_id in ended if (jobs[job_id]["cost_usd"] or 0) >= THRESHOLD_USD}
    assert expected and set(costly) == expected
    assert all(body["cost_threshold_usd"] == THRESHOLD_USD for body in costly.values())
    assert receiver.url not in stack.log()  # the URL is a credential
