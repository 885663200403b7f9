"""Keeps the local stack's DynamoDB contents across restarts: a JSON snapshot in the state folder.

moto's server lives in memory, so the stack saves every table when it stops
(and now and then while it runs, in case it is killed) and loads them at start.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

# Items travel in DynamoDB's own JSON (typed, numbers as strings): exact, and plain JSON already.


def save_tables(client: Any, table_names: dict[str, str], path: Path) -> int:
    """Write every item of every table to `path` atomically; returns the number of items."""
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for logical_id, name in table_names.items():
        items: list[dict[str, Any]] = []
        paginator = client.get_paginator("scan")  # a whole-table copy: the one place a scan is the point
        for page in paginator.paginate(TableName=name):
            items.extend(page.get("Items", []))
        snapshot[logical_id] = items
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-")
    with os.fdopen(handle, "w") as stream:
        json.dump(snapshot, stream)
    os.replace(temporary, path)
    return sum(len(items) for items in snapshot.values())


def load_tables(client: Any, table_names: dict[str, str], path: Path) -> int:
    """Put the items saved in `path` back; returns how many. A missing file loads nothing."""
    if not path.exists():
        return 0
    snapshot = json.loads(path.read_text())
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
