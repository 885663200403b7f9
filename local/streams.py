"""Reads a DynamoDB stream the way Lambda's event source mapping does, for the local stack and tests.

The local DynamoDB server (local/dynamodb_server.py) drops a shard's records once a GetRecords call
comes with an iterator past them, so memory stays flat: one reader per stream, reading forward only,
as this one does.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

log = logging.getLogger("local.streams")


class StreamReader:
    """Hands out every new record of a table's stream once, in order, shard by shard."""

    def __init__(self, streams_client: Any, stream_arn: str, from_start: bool = False) -> None:
        self._client = streams_client
        self._arn = stream_arn
        self._start = "TRIM_HORIZON" if from_start else "LATEST"
        self._iterators: dict[str, str | None] = {}
        # Like an event source mapping: the position is fixed when the reader is created;
        # shards that appear later are read from their start.
        self._refresh_shards()
        self._start = "TRIM_HORIZON"

    @classmethod
    def for_table(
        cls, dynamodb_client: Any, streams_client: Any, table_name: str, from_start: bool = False
    ) -> "StreamReader":
        arn = dynamodb_client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        return cls(streams_client, arn, from_start)

    def _refresh_shards(self) -> None:
        shards = self._client.describe_stream(StreamArn=self._arn)["StreamDescription"].get("Shards", [])
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._client.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard_id, ShardIteratorType=self._start
                )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        self._refresh_shards()
        records: list[dict[str, Any]] = []
        for shard_id, iterator in list(self._iterators.items()):
            while iterator:
                answer = self._client.get_records(ShardIterator=iterator, Limit=1000)
                records.extend(answer.get("Records", []))
                iterator = answer.get("NextShardIterator")
                if not answer.get("Records"):
                    break
            self._iterators[shard_id] = iterator
        return [dict(record, eventSource="aws:dynamodb") for record in records]


def matches_filter(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    """True when `record` matches one FilterCriteria pattern of an event source mapping, as Lambda decides.

    Covers what jobsync's template uses and a little more: nested keys, lists of accepted values, and
    the `exists`, `prefix`, `anything-but` and `numeric` operators.
    """
    for key, expected in pattern.items():
        present = isinstance(record, dict) and key in record
        if isinstance(expected, dict):
            if not present or not matches_filter(expected, record[key]):
                return False
            continue
        if not any(_accepts(rule, present, record.get(key) if present else None) for rule in expected):
            return False
    return True


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _accepts(rule: Any, present: bool, value: Any) -> bool:
    if not isinstance(rule, dict):
        return present and value == rule
    if "exists" in rule:
        return present is bool(rule["exists"])
    if not present:
        return False
    if "prefix" in rule:
        return isinstance(value, str) and value.startswith(rule["prefix"])
    if "anything-but" in rule:
        excluded = rule["anything-but"]
        return value not in (excluded if isinstance(excluded, list) else [excluded])
    if "numeric" in rule:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        terms = rule["numeric"]
        return all(_COMPARISONS[op](value, float(bound)) for op, bound in zip(terms[::2], terms[1::2], strict=True))
    raise ValueError(f"filter rule not understood: {rule!r}")


Invoke = Callable[[dict[str, Any]], Any]


def deliver_to_consumer(
    records: list[dict[str, Any]],
    *,
    patterns: tuple[dict[str, Any], ...],
    batch_size: int,
    retries: int,
    reports_item_failures: bool,
    invoke: Invoke,
) -> list[dict[str, Any]]:
    """Hand `records` to one consumer as its event source mapping would; the records it gave up on.

    Only records matching one of `patterns` (all, without patterns) are delivered, `batch_size` at a
    time. A batch whose invocation raised is retried whole; with `reports_item_failures`, a batch is
    retried from the first record the function named in `batchItemFailures`. After `retries` retries
    the rest of the batch is given up (Lambda sends it to the on-failure destination) and the next
    batch goes on.
    """
    wanted = [record for record in records if not patterns or any(matches_filter(p, record) for p in patterns)]
    given_up: list[dict[str, Any]] = []
    for start in range(0, len(wanted), batch_size):
        batch = wanted[start : start + batch_size]
        for attempt in range(retries + 1):
            try:
                answer = invoke({"Records": batch})
            except Exception:  # noqa: BLE001 - Lambda retries whatever the function raised
                log.exception("a stream consumer failed on %d record(s) (attempt %d)", len(batch), attempt + 1)
                remaining = batch
            else:
                remaining = _unfinished(batch, answer) if reports_item_failures else []
            if not remaining:
                break
            batch = remaining
        else:
            given_up.extend(batch)
    return given_up


def _unfinished(batch: list[dict[str, Any]], answer: Any) -> list[dict[str, Any]]:
    """The records from the first one the function reported failed (all of them when it reported nonsense)."""
    failures = (answer or {}).get("batchItemFailures") if isinstance(answer, dict) else None
    if not failures:
        return []
    named = {failure.get("itemIdentifier") for failure in failures}
    for index, record in enumerate(batch):
        if record.get("dynamodb", {}).get("SequenceNumber") in named:
            return batch[index:]
    return batch
