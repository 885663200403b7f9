"""The metric counters stay exact under any interleaving: 20 first syncs, 50 webhooks and the poller at once.

The counters (job count, active count, count by status, total cost) move in the same transaction as each
job write, so whatever the order in which concurrent writers meet, `/api/cloud/metrics` must equal what
the jobs themselves say, job by job. A fresh stack is hit at once by twenty first syncs (each importing
the simulator's whole history), fifty signed webhooks (new jobs, several webhooks racing on one job,
jobs the syncs are importing at that moment, duplicates) and its poller, which ticks every second
throughout (and is shown to act on its own afterwards). Every request must be answered 2xx.

A gate of its own (`make concurrency`, which .ci/run runs after `make test`): about 30 s of CPU, most of it
the stack's twenty imports of the history.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from local.replicate_simulator import SimulatedReplicate
from tests.e2e.conftest import SECRET, simulator_stack
from tests.stack_process import PATIENCE_SECONDS, LocalStack, api, send_signed_webhook

pytestmark = [pytest.mark.e2e, pytest.mark.gate]

ACTIVE = {"pending", "uploading", "queued", "running"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> LocalStack:
    stack = simulator_stack(tmp_path_factory, "concurrency-stack")
    stack.start()
    yield stack
    stack.stop()


def the_stacks_simulator(stack: LocalStack) -> SimulatedReplicate:
    """The stack's own simulator, seen from here: the same anchor and speed give the same jobs, answer for answer."""
    anchor = json.loads((stack.state_dir / "simulator" / "simulator.json").read_text())["anchor"]
    return SimulatedReplicate(anchor=anchor, speed=10.0)


def new_job(job_id: str, status: str) -> dict:
    """A job only webhooks know of (a prediction run from elsewhere), as Replicate's webhook shows it."""
    started = status != "starting"
    return {
        "id": job_id,
        "model": "e2e/concurrent",
        "status": status,
        "created_at": "2026-11-29T10:00:00.000000Z",
        "started_at": "2026-11-29T10:00:02.000000Z" if started else None,
        "completed_at": "2026-11-29T10:01:42.000000Z" if status in ("succeeded", "failed") else None,
        "metrics": {"predict_time": 100.0} if status in ("succeeded", "failed") else {},
        "logs": "step 1/10",
        "error": "out of memory" if status == "failed" else None,
        "output": None,
    }


def webhooks(simulator: SimulatedReplicate) -> list[tuple[dict, str]]:
    """Fifty (payload, webhook-id) pairs: for new jobs, racing on one job, for jobs being synced, duplicated."""
    now = time.time()
    sent: list[tuple[dict, str]] = []
    # Five new jobs, four webhooks each, all at once: the first terminal status wins, whichever it is.
    for number in range(5):
        for step, status in enumerate(("starting", "processing", "succeeded", "failed")):
            sent.append((new_job(f"concurrent-{number}", status), f"msg_concurrent_{number}_{step}"))
    # The simulator's trainings as they are now, and old predictions: the syncs are importing these.
    known = [job for job in simulator.jobs(now=now) if job["id"] in simulator.scenario_ids.values()]
    history = [job for job in simulator.jobs(now=now) if job["id"] not in simulator.scenario_ids.values()]
    for job in known:
        sent.append((simulator.get(job["id"], now=now), f"msg_training_{job['id']}"))
    for job in history[: 25 - len(known)]:
        sent.append((simulator.get(job["id"], now=now), f"msg_history_{job['id']}"))
    # Five deliveries a second time, at the same moment: each is applied once.
    sent += sent[:3] + sent[20:22]
    assert len(sent) == 50
    return sent


def poller_ends_a_training(stack: LocalStack, simulator: SimulatedReplicate, existing: set[str]) -> None:
    """Waits until a training still active in the stack ends there as it ended at the simulator: with no
    sync and no webhook, only the poller (every second since the start) could have brought that.
    `existing`: the simulator's jobs before the syncs (a scripted training that starts later is in none)."""
    trainings = set(simulator.scenario_ids.values()) & existing
    stored = {job_id: api(stack, "GET", f"/api/cloud/jobs/{job_id}").json()["job"]["status"] for job_id in trainings}
    active = {job_id for job_id, status in stored.items() if status in ACTIVE}
    assert active, "the simulator has trainings running for minutes"
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        for job_id in active:
            if api(stack, "GET", f"/api/cloud/jobs/{job_id}").json()["job"]["status"] not in ACTIVE:
                assert simulator.get(job_id)["status"] in ("succeeded", "failed", "canceled")
                return
        time.sleep(0.5)
    raise AssertionError(f"the poller ended none of {sorted(active)} in {PATIENCE_SECONDS} s")


def stable_metrics_and_jobs(stack: LocalStack) -> tuple[dict, list[dict]]:
    """The metrics and every job, read while nothing changed in between (metrics equal before and after)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        before = api(stack, "GET", "/api/cloud/metrics").json()
        jobs, cursor = [], None
        while True:
            page = api(
                stack, "GET", "/api/cloud/jobs", params={"limit": "500", **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200, page.text
            jobs += page.json()["jobs"]
            cursor = page.json()["next_cursor"]
            if not cursor:
                break
        if api(stack, "GET", "/api/cloud/metrics").json() == before or time.monotonic() > deadline:
            return before, jobs
        time.sleep(0.5)


def test_counters_equal_the_jobs_after_concurrent_syncs_webhooks_and_the_poller(stack: LocalStack) -> None:
    simulator = the_stacks_simulator(stack)
    planned = webhooks(simulator)
    existing = {job["id"] for job in simulator.jobs()}
    start = threading.Barrier(20 + len(planned))

    def sync() -> httpx.Response:
        start.wait()
        return api(stack, "POST", "/api/cloud/jobs/sync")

    def webhook(payload: dict, webhook_id: str) -> httpx.Response:
        start.wait()
        return send_signed_webhook(stack.url, SECRET, payload, webhook_id)

    with ThreadPoolExecutor(max_workers=20 + len(planned)) as pool:
        syncs = [pool.submit(sync) for _ in range(20)]
        hooks = [pool.submit(webhook, payload, webhook_id) for payload, webhook_id in planned]
        answers = [future.result() for future in syncs + hooks]

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: 70}, [
        (answer.status_code, answer.text[:200]) for answer in answers if answer.status_code != 200
    ]
    assert sum(answer.json()["synced"] for answer in answers[:20]) >= 1
    assert sum(answer.json()["duplicate"] for answer in answers[20:]) >= 5  # the repeated deliveries, at least
    poller_ends_a_training(stack, simulator, existing)

    # Nothing moves while the counts are compared: no more webhooks, and the poller is told to rest.
    assert api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": False}).status_code == 200
    metrics, jobs = stable_metrics_and_jobs(stack)

    ids = {job["job_id"] for job in jobs}
    assert len(ids) == len(jobs)
    assert {f"concurrent-{number}" for number in range(5)} <= ids
    assert {payload["id"] for payload, _ in planned} <= ids
    by_status = Counter(job["status"] for job in jobs)
    assert metrics["job_count"] == len(jobs)
    assert (
        metrics["active_count"] == sum(job["status"] in ACTIVE for job in jobs) == sum(job["is_active"] for job in jobs)
    )
    assert metrics["jobs_by_status"] == {status: by_status.get(status, 0) for status in metrics["jobs_by_status"]}
    assert set(by_status) <= set(metrics["jobs_by_status"])
    assert metrics["total_cost_usd"] == pytest.approx(sum(job["cost_usd"] or 0 for job in jobs), abs=1e-5)
    for number in range(5):  # four racing webhooks: one terminal status, never both
        job = api(stack, "GET", f"/api/cloud/jobs/concurrent-{number}").json()["job"]
        assert job["status"] in ("completed", "failed")
