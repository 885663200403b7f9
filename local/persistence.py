"""Keeps the local stack's DynamoDB contents across restarts: a JSON snapshot in the state folder.

moto's server lives in memory, so the stack saves the tables when it stops
(and now and then while it runs, in case it is killed) and loads them at start.

Only what outlives a process is kept. WebSocket connections never survive a
restart, so their rows and the per-IP slots that count them are neither saved
nor restored (a restored slot would refuse new sockets for ones long gone).
The metric counters are rebuilt from the restored jobs: the tables are read
one after another, so a snapshot taken while jobs change may hold counters
out of step with its jobs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from local import lambda_runtime

# Logical ids in template.yaml.
JOBS_TABLE = "JobsTable"
CONNECTIONS_TABLE = "ConnectionsTable"
STATE_TABLE = "StateTable"
_IP_SLOT_PREFIX = "ip#"  # jobsync.store.connections: one state item per source IP

# Items travel in DynamoDB's own JSON (typed, numbers as strings): exact, and plain JSON already.


def _lasting(logical_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items worth keeping across a restart: none of the connections' bookkeeping."""
    if logical_id == CONNECTIONS_TABLE:
        return []
    if logical_id == STATE_TABLE:
        return [item for item in items if not item["pk"]["S"].startswith(_IP_SLOT_PREFIX)]
    return items


def save_tables(client: Any, table_names: dict[str, str], path: Path) -> int:
    """Write the lasting items of every table to `path` atomically; returns the number of items."""
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for logical_id, name in table_names.items():
        if logical_id == CONNECTIONS_TABLE:
            continue
        items: list[dict[str, Any]] = []
        paginator = client.get_paginator("scan")  # a whole-table copy: the one place a scan is the point
        for page in paginator.paginate(TableName=name):
            items.extend(page.get("Items", []))
        snapshot[logical_id] = _lasting(logical_id, items)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-")
    with os.fdopen(handle, "w") as stream:
        json.dump(snapshot, stream)
    os.replace(temporary, path)
    return sum(len(items) for items in snapshot.values())


def _counters_item(job_items: list[dict[str, Any]]) -> dict[str, Any]:
    """The metric counters item the jobs' own writes would have left, counted by the store's own rules."""
    lambda_runtime.use_layer()  # jobsync lives in the layer, as on Lambda
    from jobsync.domain.job import Job
    from jobsync.store.dynamo import from_stream_image
    from jobsync.store.jobs import METRICS_KEY, _counter_deltas

    totals: Counter[str] = Counter()
    for item in job_items:
        totals.update(_counter_deltas(Job.from_record(from_stream_image(item)), None))
    serialize = TypeSerializer().serialize
    return {"pk": serialize(METRICS_KEY), **{name: serialize(value) for name, value in totals.items() if value}}


def load_tables(client: Any, table_names: dict[str, str], path: Path) -> int:
    """Put the lasting items saved in `path` back; returns how many. A missing file loads nothing."""
    if not path.exists():
        return 0
    snapshot = {logical_id: _lasting(logical_id, items) for logical_id, items in json.loads(path.read_text()).items()}
    if JOBS_TABLE in snapshot:
        counters = _counters_item(snapshot[JOBS_TABLE])
        others = [item for item in snapshot.get(STATE_TABLE, []) if item["pk"] != counters["pk"]]
        snapshot[STATE_TABLE] = [*others, counters]
    loaded = 0
    for logical_id, items in snapshot.items():
        name = table_names.get(logical_id)
        if name is None:
            continue
        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            while requests:
                answer = client.batch_write_item(RequestItems={name: requests})
                requests = answer.get("UnprocessedItems", {}).get(name, [])
        loaded += len(items)
    return loaded
