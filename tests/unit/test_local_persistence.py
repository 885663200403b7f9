"""What a restart of the local stack keeps: jobs and settings come back, connections do not, counters match.

The first tests load an older stack's snapshot (format 1) under moto's mock; the last ones restart the
local DynamoDB server over its state folder, after kill -9 or over an older stack's snapshot.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from moto.core.base_backend import BackendDict

from jobsync.domain.job import Job
from jobsync.domain.status import JobStatus
from jobsync.store.connections import ConnectionStore
from jobsync.store.jobs import METRICS_KEY, JobStore, is_counter_key
from local.dynamodb_server import LocalDynamoDB
from local.persistence import load_tables, restore_tables, save_tables
from local.template import create_tables, load_template
from tests.unit.test_local_dynamodb_server import ServerForks, ServerProcess, make_tables
from tests.unit.test_local_dynamodb_server import client as server_client

LOGICAL = {"JobsTable": "jobs", "ConnectionsTable": "connections", "StateTable": "state"}


@pytest.fixture
def client(tables):
    return boto3.client("dynamodb", region_name="us-east-1")


def scan(client, name: str) -> list[dict]:
    return client.scan(TableName=name)["Items"]


def fill(client) -> dict:
    """Jobs, two open sockets from one IP, a setting; returns the exact counters item the writes left."""
    jobs = JobStore("jobs", "state")
    running = jobs.save(Job(job_id="a", provider="replicate", status=JobStatus.RUNNING), None)
    jobs.save(Job(job_id="b", provider="replicate", status=JobStatus.COMPLETED, cost_usd=0.915), None)
    jobs.save(Job(job_id="c", provider="replicate", status=JobStatus.FAILED, cost_usd=0.0123), None)
    jobs.save(Job(job_id="d", provider="replicate", status=JobStatus.QUEUED), None)
    jobs.save(Job(job_id="a", provider="replicate", status=JobStatus.COMPLETED, cost_usd=1.2), running)
    connections = ConnectionStore("connections", "state")
    assert connections.open("conn-1", "10.0.0.7", 5) and connections.open("conn-2", "10.0.0.7", 5)
    client.put_item(TableName="state", Item={"pk": {"S": "polling#preference"}, "enabled": {"BOOL": False}})
    counters = summed_counters(scan(client, "state"))
    assert counters["jobs_completed"] == 2
    return counters


def summed_counters(state_items: list[dict]) -> dict:
    """The metric counters the state items hold, summed over the counter shards, zeros left out."""
    totals: dict[str, Decimal] = {}
    for item in state_items:
        if is_counter_key(item["pk"]["S"]):
            for name, value in item.items():
                if name != "pk":
                    totals[name] = totals.get(name, Decimal(0)) + Decimal(value["N"])
    return {name: value for name, value in totals.items() if value}


def fresh_tables(client) -> dict[str, str]:
    return create_tables(client, load_template(), lambda logical_id: f"fresh-{logical_id}")


def assert_no_socket_and_exact_counters(client, fresh: dict, exact: dict) -> None:
    """Connections never survive a restart; the counters are rebuilt from the jobs."""
    assert scan(client, fresh["ConnectionsTable"]) == []
    state = scan(client, fresh["StateTable"])
    assert {item["pk"]["S"] for item in state if not is_counter_key(item["pk"]["S"])} == {"polling#preference"}
    assert summed_counters(state) == exact


def test_a_restart_keeps_jobs_and_settings_but_no_connection_and_recounts_the_counters(client, tmp_path):
    exact = fill(client)
    # A snapshot read while jobs changed: counters (the old single item and a shard) out of step with its jobs.
    for key in (METRICS_KEY, f"{METRICS_KEY}#3"):
        client.put_item(
            TableName="state", Item={"pk": {"S": key}, "jobs_running": {"N": "7"}, "total_cost_usd": {"N": "99.5"}}
        )
    snapshot = tmp_path / "dynamodb.json"

    save_tables(client, LOGICAL, snapshot)
    saved = json.loads(snapshot.read_text())
    assert "ConnectionsTable" not in saved
    assert not [item for item in saved["StateTable"] if item["pk"]["S"].startswith("ip#")]

    fresh = fresh_tables(client)
    load_tables(client, fresh, snapshot)

    assert_no_socket_and_exact_counters(client, fresh, exact)
    assert len(scan(client, fresh["JobsTable"])) == 4
    restored = JobStore(fresh["JobsTable"], fresh["StateTable"]).counters()
    assert restored.by_status["completed"] == 2 and restored.by_status["running"] == 0
    assert restored.total_cost_usd == pytest.approx(0.915 + 0.0123 + 1.2)


def test_a_snapshot_written_before_this_rule_still_brings_no_socket_back(client, tmp_path):
    """A snapshot that holds connection rows and IP slots (an older stack's, killed with sockets open)."""
    exact = fill(client)
    snapshot = tmp_path / "dynamodb.json"
    snapshot.write_text(json.dumps({logical: scan(client, name) for logical, name in LOGICAL.items()}))

    fresh = fresh_tables(client)
    load_tables(client, fresh, snapshot)

    assert_no_socket_and_exact_counters(client, fresh, exact)
    # The IP's slot is free again: all five sockets may open.
    sockets = ConnectionStore(fresh["ConnectionsTable"], fresh["StateTable"])
    assert all(sockets.open(f"new-{number}", "10.0.0.7", 5) for number in range(5))


def test_no_jobs_means_no_counts(client, tmp_path):
    client.put_item(TableName="state", Item={"pk": {"S": METRICS_KEY}, "jobs_running": {"N": "3"}})
    snapshot = tmp_path / "dynamodb.json"
    save_tables(client, LOGICAL, snapshot)

    fresh = fresh_tables(client)
    load_tables(client, fresh, snapshot)

    counters = JobStore(fresh["JobsTable"], fresh["StateTable"]).counters()
    assert sum(counters.by_status.values()) == 0 and counters.total_cost_usd == 0


# ------------------------------------------------ the local DynamoDB server's state folder

NAMES = {logical: f"jobsync-local-{logical}" for logical in LOGICAL}


def point_jobsync_at(monkeypatch, url: str) -> None:
    from jobsync import wiring

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
    wiring.reset()


@contextmanager
def restarted(state_dir: Path, monkeypatch):
    """A server in this process over `state_dir`, its tables created and restored as the stack does."""
    server = LocalDynamoDB(state_dir)
    url = server.start()
    try:
        make_tables(url)
        restore_tables(server, server_client(url), NAMES)
        point_jobsync_at(monkeypatch, url)
        yield server, server_client(url)
    finally:
        server.stop()
        BackendDict.reset()  # moto's data belongs to the process: a restart starts from nothing


def fill_with_jobsync(dynamodb) -> dict:
    """`fill`, written by jobsync's own stores to the server's tables."""
    jobs = JobStore(NAMES["JobsTable"], NAMES["StateTable"])
    running = jobs.save(Job(job_id="a", provider="replicate", status=JobStatus.RUNNING), None)
    jobs.save(Job(job_id="b", provider="replicate", status=JobStatus.COMPLETED, cost_usd=0.915), None)
    jobs.save(Job(job_id="a", provider="replicate", status=JobStatus.COMPLETED, cost_usd=1.2), running)
    sockets = ConnectionStore(NAMES["ConnectionsTable"], NAMES["StateTable"])
    assert all(sockets.open(f"conn-{number}", "10.0.0.7", 5) for number in range(5))
    dynamodb.put_item(
        TableName=NAMES["StateTable"], Item={"pk": {"S": "polling#preference"}, "enabled": {"BOOL": False}}
    )
    return summed_counters(scan(dynamodb, NAMES["StateTable"]))


def assert_kept_without_sockets(dynamodb, exact: dict) -> None:
    assert {item["job_id"]["S"] for item in scan(dynamodb, NAMES["JobsTable"])} == {"a", "b"}
    assert_no_socket_and_exact_counters(dynamodb, NAMES, exact)
    # The IP's slot is free again: all five sockets may open.
    sockets = ConnectionStore(NAMES["ConnectionsTable"], NAMES["StateTable"])
    assert all(sockets.open(f"new-{number}", "10.0.0.7", 5) for number in range(5))


@pytest.fixture
def server_forks():
    """Forks servers in their own processes (tests/unit/test_local_dynamodb_server.py's FORKING_SERVER)."""
    forks = ServerForks()
    yield forks
    forks.close()


def test_a_stack_killed_with_sockets_open_comes_back_with_its_jobs_and_no_socket(
    aws_env, monkeypatch, tmp_path, server_forks
):
    killed = ServerProcess(server_forks, tmp_path)
    try:
        point_jobsync_at(monkeypatch, killed.url)
        exact = fill_with_jobsync(killed.dynamodb)
    finally:
        killed.kill()  # every write is in the journal, the five sockets' rows and slot included

    with restarted(tmp_path, monkeypatch) as (_, dynamodb):
        assert_kept_without_sockets(dynamodb, exact)


def test_an_older_stacks_snapshot_is_loaded_once_then_kept_in_the_new_format(aws_env, monkeypatch, tmp_path):
    with restarted(tmp_path / "old", monkeypatch) as (_, dynamodb):
        exact = fill_with_jobsync(dynamodb)
        (tmp_path / "new").mkdir()
        save_tables(dynamodb, NAMES, tmp_path / "new" / "dynamodb.json")  # as the stack saved it before the journal

    with restarted(tmp_path / "new", monkeypatch) as (_, dynamodb):
        assert_kept_without_sockets(dynamodb, exact)
        assert json.loads((tmp_path / "new" / "dynamodb.json").read_text())["format"] == 2
        dynamodb.delete_item(TableName=NAMES["JobsTable"], Key={"job_id": {"S": "b"}})

    with restarted(tmp_path / "new", monkeypatch) as (_, dynamodb):
        assert {item["job_id"]["S"] for item in scan(dynamodb, NAMES["JobsTable"])} == {"a"}  # not loaded again
