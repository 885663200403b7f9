"""The metric counters: spread over shards so concurrent writers of different jobs rarely meet, summed exactly.

DynamoDB cancels a transaction that touches an item another in-flight transaction is writing
(TransactionConflict). moto has no such conflicts, so the rule is modelled here on the transactions
the store really sends: the worst case, every writer's transaction in flight at once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest

from jobsync import wiring
from jobsync.domain.job import Job
from jobsync.domain.status import JobStatus
from jobsync.store import jobs as job_store_module
from jobsync.store.jobs import COUNTER_SHARDS, METRICS_KEY, counter_key, counter_keys

WRITERS = 50


def stored_running(count: int) -> list[Job]:
    store = wiring.job_store()
    return [
        store.save(Job(job_id=f"train{number:03d}", provider="replicate", status=JobStatus.RUNNING), None)
        for number in range(count)
    ]


def sent_transactions(monkeypatch) -> list[list[dict[str, Any]]]:
    """Every list of actions the job store writes together, as it sends them."""
    sent: list[list[dict[str, Any]]] = []
    real = job_store_module.JobStore._transact

    def recording(self, actions):
        sent.append(actions)
        return real(self, actions)

    monkeypatch.setattr(job_store_module.JobStore, "_transact", recording)
    return sent


def item_keys(actions: list[dict[str, Any]]) -> set[tuple[str, str]]:
    keys = set()
    for action in actions:
        operation = next(iter(action.values()))
        key = operation.get("Key") or operation["Item"]
        keys.add((operation["TableName"], str(key.get("pk") or key.get("job_id"))))
    return keys


def cancelled_if_all_in_flight(transactions: list[list[dict[str, Any]]]) -> int:
    """DynamoDB's rule with every transaction in flight at once, in the order sent: one that touches an
    item an earlier one holds is cancelled (TransactionConflict)."""
    held: set[tuple[str, str]] = set()
    cancelled = 0
    for actions in transactions:
        keys = item_keys(actions)
        if keys & held:
            cancelled += 1
        else:
            held |= keys
    return cancelled


def test_fifty_writers_of_different_jobs_rarely_share_a_counter_item(tables, monkeypatch):
    jobs = stored_running(WRITERS)
    sent = sent_transactions(monkeypatch)

    store = wiring.job_store()
    for job in jobs:
        store.save(Job(job_id=job.job_id, provider="replicate", status=JobStatus.COMPLETED, cost_usd=0.5), job)

    assert len(sent) == WRITERS and all(len(actions) == 2 for actions in sent)  # the job and one counter shard
    # One counter item for all: 49 of the 50 would be cancelled. With the shards, the ones that share a shard.
    shards = {counter_key(job.job_id) for job in jobs}
    assert cancelled_if_all_in_flight(sent) == WRITERS - len(shards)
    assert cancelled_if_all_in_flight(sent) <= 16
    counters = store.counters()
    assert counters.by_status["completed"] == WRITERS and counters.by_status["running"] == 0
    assert counters.total_cost_usd == pytest.approx(WRITERS * 0.5)


def test_a_job_moves_the_same_shard_every_time_and_ids_spread_over_all_shards():
    assert counter_key("r8abc") == counter_key("r8abc")
    assert {counter_key(f"job{number}") for number in range(2000)} == set(counter_keys()) - {METRICS_KEY}
    assert len(counter_keys()) == COUNTER_SHARDS + 1 <= 100  # one BatchGetItem reads them all


def test_metrics_sum_every_shard_and_the_single_item_older_stacks_wrote(tables):
    state = boto3.resource("dynamodb", region_name="us-east-1").Table(tables["StateTable"])
    # What a stack kept before the shards: one item, still counted.
    state.put_item(Item={"pk": METRICS_KEY, "jobs_completed": 3, "total_cost_usd": Decimal("1.25")})
    state.put_item(Item={"pk": "polling#preference", "enabled": True, "jobs_completed": 100})  # not a counter

    store = wiring.job_store()
    running = store.save(Job(job_id="a", provider="replicate", status=JobStatus.RUNNING), None)
    store.save(Job(job_id="b", provider="replicate", status=JobStatus.QUEUED), None)
    store.save(Job(job_id="a", provider="replicate", status=JobStatus.FAILED, cost_usd=0.5), running)
    store.create_together([Job(job_id=f"new{n}", provider="replicate", status=JobStatus.COMPLETED) for n in range(5)])

    counters = store.counters()
    assert counters.by_status == {
        "pending": 0,
        "uploading": 0,
        "queued": 1,
        "running": 0,
        "completed": 8,
        "failed": 1,
        "cancelled": 0,
    }
    assert counters.total_cost_usd == pytest.approx(1.75)


def test_a_batch_of_new_jobs_moves_one_shard_in_its_transaction(tables, monkeypatch):
    sent = sent_transactions(monkeypatch)

    wiring.job_store().create_together(
        [Job(job_id=f"new{n:02d}", provider="replicate", status=JobStatus.COMPLETED) for n in range(99)]
    )

    (actions,) = sent
    assert len(actions) == 100  # DynamoDB's limit: 99 jobs and one counter shard
    assert [action["Update"]["Key"]["pk"] for action in actions if "Update" in action] == [counter_key("new00")]
    assert wiring.job_store().counters().by_status["completed"] == 99
