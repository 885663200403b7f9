"""Jobs in DynamoDB: read by key, page through an index per filter, write conditionally.

Every write is conditional on the version read, so two writers never lose an
update, and it moves the metric counters in the same transaction, so the
counters are exact without ever scanning the table. The counters are spread
over COUNTER_SHARDS items, the one a job moves chosen by its id, and summed on
read: DynamoDB cancels a transaction that meets another one on any of its
items, so a single counter item would make every concurrent writer of
different jobs collide.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, TypeGuard

from boto3.dynamodb.conditions import Key

from jobsync.domain.errors import InvalidInput
from jobsync.domain.fingerprint import job_digest
from jobsync.domain.job import Job
from jobsync.domain.status import ACTIVE_STATUSES, JobStatus
from jobsync.domain.timestamps import sortable
from jobsync.store import dynamo

ALL_JOBS = "job"
METRICS_KEY = "metrics#jobs"
# 64 shards: of 50 writers in flight at once, about 15 share a shard with another (49 with one item); a
# metrics read stays one BatchGetItem of 65 small items (the shards and METRICS_KEY, the item of before).
COUNTER_SHARDS = 64
_BATCH_GET_LIMIT = 100
# DynamoDB takes 100 actions a transaction: 99 jobs and their counter update.
TRANSACTION_JOBS = 99


def _counter_deltas(job: Job, previous: Job | None) -> dict[str, Decimal]:
    """How the metric counters move when `previous` becomes `job` (as Decimals, DynamoDB's numbers)."""
    deltas: defaultdict[str, Decimal] = defaultdict(Decimal)
    old_status = previous.status if previous else None
    if job.status != old_status:
        deltas[f"jobs_{job.status.value}"] += 1
        if old_status is not None:
            deltas[f"jobs_{old_status.value}"] -= 1
    previous_cost = previous.cost_usd if previous and previous.cost_usd else 0
    deltas["total_cost_usd"] += Decimal(str(job.cost_usd or 0)) - Decimal(str(previous_cost))
    return deltas


def counter_key(job_id: str) -> str:
    """The counter shard that `job_id`'s writes move (crc32: the same in every process, unlike hash())."""
    return f"{METRICS_KEY}#{zlib.crc32(job_id.encode()) % COUNTER_SHARDS}"


def counter_keys() -> list[str]:
    """Every item the counters are summed from: the shards, and METRICS_KEY (what stacks wrote before the shards)."""
    return [METRICS_KEY, *(f"{METRICS_KEY}#{shard}" for shard in range(COUNTER_SHARDS))]


def is_counter_key(pk: str) -> bool:
    return pk == METRICS_KEY or pk.startswith(f"{METRICS_KEY}#")


@dataclass(frozen=True)
class _Index:
    name: str
    hash_attribute: str

    @property
    def key_attributes(self) -> frozenset[str]:
        return frozenset({"job_id", self.hash_attribute, "created_sort"})


BY_CREATED = _Index("by_created", "all_jobs")
BY_STATUS = _Index("by_status", "status")
BY_PROVIDER = _Index("by_provider", "provider")
BY_PROVIDER_STATUS = _Index("by_provider_status", "provider_status_key")
_INDEXES = {index.name: index for index in (BY_CREATED, BY_STATUS, BY_PROVIDER, BY_PROVIDER_STATUS)}


@dataclass(frozen=True)
class JobCounters:
    by_status: dict[str, int]
    total_cost_usd: float


def _index_for(provider: str | None, status: JobStatus | None) -> tuple[_Index, str]:
    if provider and status:
        return BY_PROVIDER_STATUS, f"{provider}#{status.value}"
    if status:
        return BY_STATUS, status.value
    if provider:
        return BY_PROVIDER, provider
    return BY_CREATED, ALL_JOBS


def _item(job: Job) -> dict[str, Any]:
    item: dict[str, Any] = dynamo.to_dynamo(job.to_record())
    item["all_jobs"] = ALL_JOBS
    # Fixed-width UTC so that mixed provider precisions sort as time; the id breaks ties.
    item["created_sort"] = f"{sortable(job.created_at)}#{job.job_id}"
    item["provider_status_key"] = f"{job.provider}#{job.status.value}"
    # What the provider last said, digested: a refresh compares it with the lists without reading the job.
    item["observed"] = job_digest(job)
    return item


@dataclass(frozen=True)
class ActiveJobRef:
    """The little of an active job a refresh needs to match it against the provider's lists."""

    job_id: str
    kind: str
    created_at: str | None
    # jobsync.domain.fingerprint.job_digest of the stored job; None for a job stored before digests were.
    observed: str | None


def _job(item: dict[str, Any]) -> Job:
    return Job.from_record(dynamo.from_dynamo(item))


def _active_ref(item: dict[str, Any]) -> ActiveJobRef:
    """An ActiveJobRef from an item in DynamoDB's JSON ({"S": ...}: the wire client's answer)."""

    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return value if isinstance(value, str) else None

    return ActiveJobRef(item["job_id"]["S"], text("kind") or "prediction", text("created_at"), text("observed"))


def encode_cursor(index: _Index, item: dict[str, Any]) -> str:
    key = {attribute: item[attribute] for attribute in index.key_attributes}
    raw = json.dumps({"i": index.name, "k": key}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_SORT_KEY = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)?#(.+)$", re.DOTALL)


def decode_cursor(cursor: str, index: _Index) -> dict[str, str]:
    """The start key inside a cursor, checked so that DynamoDB never sees a key it would refuse."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key = decoded["k"]
        if decoded["i"] == index.name and _is_start_key(key, index):
            return key
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        pass
    raise InvalidInput("cursor is not one this list handed out for these filters")


def _is_start_key(key: object, index: _Index) -> TypeGuard[dict[str, str]]:
    if not isinstance(key, dict) or set(key) != index.key_attributes:
        return False
    if not all(isinstance(value, str) and 0 < len(value.encode("utf-8")) <= 1024 for value in key.values()):
        return False
    sort_key = _SORT_KEY.match(key["created_sort"])
    return sort_key is not None and sort_key.group(2) == key["job_id"]


class JobStore:
    def __init__(self, jobs_table: str, state_table: str) -> None:
        self._jobs_table_name = jobs_table
        self._state_table_name = state_table

    @property
    def _table(self) -> Any:
        return dynamo.table(self._jobs_table_name)

    def get(self, job_id: str) -> Job | None:
        with dynamo.translated_errors():
            item = self._table.get_item(Key={"job_id": job_id}, ConsistentRead=True).get("Item")
        return _job(item) if item else None

    def get_many(self, job_ids: Iterable[str]) -> dict[str, Job]:
        """The stored jobs among `job_ids` (one BatchGetItem per 100 ids)."""
        unique = list(dict.fromkeys(job_ids))
        found: dict[str, Job] = {}
        for start in range(0, len(unique), _BATCH_GET_LIMIT):
            chunk = unique[start : start + _BATCH_GET_LIMIT]
            for item in self._batch_get(chunk):
                job = _job(item)
                found[job.job_id] = job
        return found

    def _batch_get(self, job_ids: list[str]) -> Iterator[dict[str, Any]]:
        return dynamo.batch_get(self._jobs_table_name, [{"job_id": job_id} for job_id in job_ids], consistent=True)

    def page(
        self, *, limit: int, provider: str | None = None, status: JobStatus | None = None, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        """One page, newest first. Reads at most limit + 1 items: the extra one only says whether more exist."""
        index, hash_value = _index_for(provider, status)
        query: dict[str, Any] = {
            "IndexName": index.name,
            "KeyConditionExpression": Key(index.hash_attribute).eq(hash_value),
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        if cursor:
            start = decode_cursor(cursor, index)
            if start[index.hash_attribute] != hash_value:
                raise InvalidInput("cursor is not one this list handed out for these filters")
            query["ExclusiveStartKey"] = start
        items = self._query(query, want=limit + 1)
        if len(items) <= limit:
            return [_job(item) for item in items], None
        return [_job(item) for item in items[:limit]], encode_cursor(index, items[limit - 1])

    def _query(self, query: dict[str, Any], want: int | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            with dynamo.translated_errors():
                answer = self._table.query(**query)
            items.extend(answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if not last or (want is not None and len(items) >= want):
                return items
            query = {**query, "ExclusiveStartKey": last}
            if want is not None:
                query["Limit"] = want - len(items)

    def active(self, provider: str) -> list[Job]:
        """Every active job of `provider`, however old: one index query per active status."""
        jobs: list[Job] = []
        for status in ACTIVE_STATUSES:
            query = {
                "IndexName": BY_PROVIDER_STATUS.name,
                "KeyConditionExpression": Key(BY_PROVIDER_STATUS.hash_attribute).eq(f"{provider}#{status.value}"),
            }
            jobs.extend(_job(item) for item in self._query(query))
        return jobs

    def active_refs(self, provider: str) -> list[ActiveJobRef]:
        """Every active job of `provider`, four small attributes each (a tenth of the parsing of whole jobs,
        over 10,000 active jobs the bulk of a tick's CPU): one index query per active status."""
        refs: list[ActiveJobRef] = []
        for status in ACTIVE_STATUSES:
            query: dict[str, Any] = {
                "TableName": self._jobs_table_name,
                "IndexName": BY_PROVIDER_STATUS.name,
                "KeyConditionExpression": "#key = :key",
                "ProjectionExpression": "#id, #kind, #created, #observed",
                "ExpressionAttributeNames": {
                    "#key": BY_PROVIDER_STATUS.hash_attribute,
                    "#id": "job_id",
                    "#kind": "kind",
                    "#created": "created_at",
                    "#observed": "observed",
                },
                "ExpressionAttributeValues": {":key": {"S": f"{provider}#{status.value}"}},
            }
            while True:
                with dynamo.translated_errors():
                    answer = dynamo.wire_client().query(**query)
                refs.extend(_active_ref(item) for item in answer.get("Items", []))
                if "LastEvaluatedKey" not in answer:
                    break
                query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return refs

    def save(self, job: Job, previous: Job | None) -> Job:
        """Store `job` if the stored copy is still `previous`; returns the stored job (new version)."""
        stored = replace(job, version=(previous.version if previous else 0) + 1)
        actions = [{"Put": self._put(stored, previous)}]
        counter_update = self._counter_update(_counter_deltas(stored, previous), counter_key(job.job_id))
        if counter_update:
            actions.append({"Update": counter_update})
        self._transact(actions)
        return stored

    def create_together(self, jobs: list[Job]) -> list[Job]:
        """Store up to 99 new jobs and their counters in one transaction.

        All or nothing: when any of them exists already, dynamo.ConcurrentUpdate is
        raised and none is stored.
        """
        if len(jobs) > TRANSACTION_JOBS:
            raise ValueError(f"at most {TRANSACTION_JOBS} jobs in one transaction")
        stored = [replace(job, version=1) for job in jobs]
        deltas: defaultdict[str, Decimal] = defaultdict(Decimal)
        for job in stored:
            for name, delta in _counter_deltas(job, None).items():
                deltas[name] += delta
        actions: list[dict[str, Any]] = [{"Put": self._put(job, None)} for job in stored]
        # One shard for the whole batch (a transaction takes 100 actions): any shard sums the same.
        counter_update = self._counter_update(deltas, counter_key(stored[0].job_id)) if stored else None
        if counter_update:
            actions.append({"Update": counter_update})
        self._transact(actions)
        return stored

    def save_together(self, changes: list[tuple[Job, Job]]) -> list[Job]:
        """Store up to 99 changed jobs, each `(job, previous)` as in `save`, and their counters in one transaction.

        All or nothing: when any stored copy is no longer its `previous`, dynamo.ConcurrentUpdate is
        raised and none is stored. Returns the stored jobs (new versions), in order.
        """
        if len(changes) > TRANSACTION_JOBS:
            raise ValueError(f"at most {TRANSACTION_JOBS} jobs in one transaction")
        if len(changes) == 1:
            return [self.save(*changes[0])]
        stored = [replace(job, version=previous.version + 1) for job, previous in changes]
        deltas: defaultdict[str, Decimal] = defaultdict(Decimal)
        for job, (_, previous) in zip(stored, changes, strict=True):
            for name, delta in _counter_deltas(job, previous).items():
                deltas[name] += delta
        actions: list[dict[str, Any]] = [
            {"Put": self._put(job, previous)} for job, (_, previous) in zip(stored, changes, strict=True)
        ]
        # One shard for the whole batch, as in create_together.
        counter_update = self._counter_update(deltas, counter_key(stored[0].job_id)) if stored else None
        if counter_update:
            actions.append({"Update": counter_update})
        if actions:
            self._transact(actions)
        return stored

    def _put(self, job: Job, previous: Job | None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self._jobs_table_name, "Item": _item(job)}
        if previous is None:
            put["ConditionExpression"] = "attribute_not_exists(job_id)"
        else:
            put["ConditionExpression"] = "version = :read_version"
            put["ExpressionAttributeValues"] = {":read_version": previous.version}
        return put

    def _counter_update(self, deltas: Mapping[str, Any], key: str) -> dict[str, Any] | None:
        deltas = {name: delta for name, delta in deltas.items() if delta}
        if not deltas:
            return None
        names = {f"#c{number}": name for number, name in enumerate(deltas)}
        values = {f":d{number}": delta for number, delta in enumerate(deltas.values())}
        expression = "ADD " + ", ".join(f"#c{number} :d{number}" for number in range(len(deltas)))
        return {
            "TableName": self._state_table_name,
            "Key": {"pk": key},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        """Write `actions` all together; ConcurrentUpdate when another writer got there first."""
        with dynamo.conditional_write():
            if len(actions) == 1:
                self._single_put(actions[0]["Put"])
            else:
                dynamo.client().transact_write_items(TransactItems=actions)

    def _single_put(self, put: dict[str, Any]) -> None:
        arguments = {key: value for key, value in put.items() if key != "TableName"}
        self._table.put_item(**arguments)

    def counters(self) -> JobCounters:
        """The counters summed over their shards: one BatchGetItem, whatever the number of jobs."""
        totals: defaultdict[str, Decimal] = defaultdict(Decimal)
        keys = [{"pk": key} for key in counter_keys()]
        for item in dynamo.batch_get(self._state_table_name, keys):
            for name, value in item.items():
                if name != "pk" and isinstance(value, Decimal):
                    totals[name] += value
        by_status = {status.value: int(totals[f"jobs_{status.value}"]) for status in JobStatus}
        return JobCounters(by_status=by_status, total_cost_usd=float(totals["total_cost_usd"]))
