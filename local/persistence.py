"""What the local stack keeps of its DynamoDB contents across a restart, and older stacks' snapshots.

The contents themselves are kept by the local DynamoDB server
(local/dynamodb_server.py): a snapshot, `dynamodb.json`, plus a journal of
every write since, so that a restart — even after kill -9 — finds every write
that was answered. What a restart should not bring back is decided here, after
the server restored the tables:

- WebSocket connections never survive a restart, so their rows and the per-IP
  slots that count them are deleted (a restored slot would refuse new sockets
  for ones long gone).

Stacks before the journal saved `dynamodb.json` as {logical id: [items]}
(format 1), without the connections and with counters possibly out of step
with the jobs (the tables were read one after another). Such a file is loaded
once — connections left out, counters rebuilt from the jobs — and at once
replaced by a snapshot in the server's format.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from local import lambda_runtime

log = logging.getLogger("local.persistence")

# Logical ids in template.yaml.
JOBS_TABLE = "JobsTable"
CONNECTIONS_TABLE = "ConnectionsTable"
STATE_TABLE = "StateTable"
_IP_SLOT_PREFIX = "ip#"  # jobsync.store.connections: one state item per source IP

# Items travel in DynamoDB's own JSON (typed, numbers as strings): exact, and plain JSON already.


def restore_tables(server: Any, client: Any, table_names: dict[str, str]) -> int:
    """Fill the tables the stack just created: the server's snapshot and journal (or an older stack's
    snapshot), then no connection. Returns the number of items kept."""
    legacy = _legacy_snapshot(server.snapshot_path)
    server.restore()
    if legacy is not None:
        loaded = _load(client, table_names, legacy)
        server.compact()  # this start's snapshot replaces the old file before anything else is written
        log.info("loaded %d items from an older stack's snapshot, now kept in the current format", loaded)
    forget_connections(client, table_names)
    return server.item_count()


def _legacy_snapshot(path: Path) -> dict[str, list[dict[str, Any]]] | None:
    """The {logical id: [items]} of a format-1 snapshot at `path`; None for the current format or no file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if isinstance(data, dict) and "format" not in data:
        return data
    return None


def forget_connections(client: Any, table_names: dict[str, str]) -> int:
    """Delete every connection row and per-IP slot: no WebSocket outlives the process. Returns how many."""
    doomed: list[tuple[str, dict[str, Any]]] = []
    if CONNECTIONS_TABLE in table_names:
        name = table_names[CONNECTIONS_TABLE]
        doomed += [(name, {"connection_id": item["connection_id"]}) for item in _scan(client, name, "connection_id")]
    if STATE_TABLE in table_names:
        name = table_names[STATE_TABLE]
        slots = _scan(client, name, "pk", "begins_with(pk, :slot)", {":slot": {"S": _IP_SLOT_PREFIX}})
        doomed += [(name, {"pk": item["pk"]}) for item in slots]
    for start in range(0, len(doomed), 25):
        requests: dict[str, list[dict[str, Any]]] = {}
        for name, key in doomed[start : start + 25]:
            requests.setdefault(name, []).append({"DeleteRequest": {"Key": key}})
        while requests:
            requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
    return len(doomed)


def _scan(
    client: Any, name: str, projection: str, condition: str | None = None, values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every item of a table (a whole-table read at start: the one place a scan is the point)."""
    arguments: dict[str, Any] = {"TableName": name, "ProjectionExpression": projection, "ConsistentRead": True}
    if condition:
        arguments.update(FilterExpression=condition, ExpressionAttributeValues=values)
    return [item for page in client.get_paginator("scan").paginate(**arguments) for item in page["Items"]]


def _lasting(logical_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items worth keeping across a restart: none of the connections' bookkeeping."""
    if logical_id == CONNECTIONS_TABLE:
        return []
    if logical_id == STATE_TABLE:
        return [item for item in items if not item["pk"]["S"].startswith(_IP_SLOT_PREFIX)]
    return items


def save_tables(client: Any, table_names: dict[str, str], path: Path) -> int:
    """Write the lasting items of every table to `path` as a format-1 snapshot, as stacks before the journal
    did (read one table after another, not atomically); returns the number of items."""
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for logical_id, name in table_names.items():
        if logical_id == CONNECTIONS_TABLE:
            continue
        items: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=name):
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


def _is_counter_item(item: dict[str, Any]) -> bool:
    """Any item the counters are summed from (all replaced by the one rebuilt from the jobs)."""
    from jobsync.store.jobs import is_counter_key

    return is_counter_key(item["pk"].get("S", ""))


def load_tables(client: Any, table_names: dict[str, str], path: Path) -> int:
    """Put the lasting items of the format-1 snapshot in `path` back; returns how many. No file loads nothing."""
    legacy = _legacy_snapshot(path)
    return 0 if legacy is None else _load(client, table_names, legacy)


def _load(client: Any, table_names: dict[str, str], saved: dict[str, list[dict[str, Any]]]) -> int:
    snapshot = {logical_id: _lasting(logical_id, items) for logical_id, items in saved.items()}
    if JOBS_TABLE in snapshot:
        counters = _counters_item(snapshot[JOBS_TABLE])
        others = [item for item in snapshot.get(STATE_TABLE, []) if not _is_counter_item(item)]
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
