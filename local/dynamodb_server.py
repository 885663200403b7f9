"""The local stack's DynamoDB: moto's server, one request at a time, every write on disk before its answer.

moto's DynamoDB is not thread-safe: a transaction deep-copies the tables it
touches and, when it fails, puts the copies back over whatever other threads
committed meanwhile; a scan iterates a dict another request is growing. So
every request, reads included, runs under one lock (`LocalDynamoDB.__call__`).
The GIL already ran moto one thread at a time: the lock only makes a whole
request the unit, and what a request costs under it is what every other
request waits (see Speed below).

Durability: a write-ahead journal (`journal` in the state folder). Every
successful write request (PutItem, UpdateItem, DeleteItem, BatchWriteItem,
TransactWriteItems and the PartiQL statements) is appended to it, as the
request itself, and fsync'd, still under the lock and before the answer goes
back. At start the last snapshot (`dynamodb.json`) is loaded and the journal's
later entries are replayed over it in order; compaction writes a new snapshot
and empties the journal under the same lock, so no write falls between the two.

Why replaying requests rebuilds the same state: requests ran one at a time,
and the journal holds the successful writes in exactly the order they ran.
Starting from the same state (the snapshot was taken under the lock at the
journal position it records), the same request gives the same result —
DynamoDB's condition expressions and update expressions (`ADD` counters,
`SET if_not_exists`, `size(...) < :limit`) read only the item and the request,
never the server's clock or anything random — so each replayed write succeeds
again and leaves the same items. Failed requests (a condition that did not
hold, a cancelled transaction) changed nothing, so leaving them out changes
nothing either. Reads change nothing and are not journaled. A torn last line
(the process died while writing it) was never answered, so dropping it loses
nothing anyone was told was saved. Entries carry a sequence number and the
snapshot records the last one it holds, so a crash between writing a snapshot
and emptying the journal does not apply a write twice.

Tables are not journaled: their definitions come from the caller (the stack
creates them from template.yaml at every start, so a template change applies
at the next start), and `restore()` fills them. Item writes are refused until
then.

Two more moto behaviours are corrected here:
- A table's stream keeps every record in a list forever. A GetRecords call
  with an iterator at sequence number N means its reader is done with the
  records before N: they are dropped (the shard's start moves up, as AWS trims
  a shard), and the iterators left behind them are forgotten. This assumes one
  reader per stream, like the stack's event source mapping.
- A transaction deep-copies each whole table it touches (0.1 s per
  transaction at 100 jobs, 0.6 s at 1,200), and a failed one puts the copies
  in the tables' place, streams included: readers kept iterating the orphaned
  stream, which held the failed transaction's records and never got another.
  Here a failed transaction is undone item by item instead
  (`_transact_write_items`), and the tables and their streams stay the same
  objects.

Speed. moto 5.2 spends most of a request around the work itself: it finds the
service by listing its package folder and trying every backend's URLs, wraps
Flask around the handler, lists the handler's methods with inspect, and writes
the answer by walking botocore's model of the output value by value (0.35 s of
a 0.4 s BatchGetItem of 100 jobs). Twenty concurrent first syncs queued
behind that lock for more than the layer's 10 s read timeout. Here the handler
is called directly (`_dispatch`), data answers are written by json.dumps
(`_serialized`: the same documents, tests/unit/test_local_dynamodb_server.py
compares them with moto's), and item sizes for moto's limits are summed once
(`_speed_up_moto`). Measured on the busy 2-core machine, in the server alone
with 237 synced jobs: GetItem 12.6 ms → 1.2 ms, BatchGetItem of 100 jobs
620 ms → 13 ms, Query of a page 10 ms → 3 ms, a 99-job TransactWriteItems
350 ms → 130 ms (moto parses each put's condition three times); the journal's
fdatasync adds 0.6 ms to a write (4 ms at the 90th percentile while other
programs write).
"""

from __future__ import annotations

import copy
import functools
import io
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import moto.core.responses
import moto.dynamodb.responses
from botocore.exceptions import ClientError
from moto.core.common_models import BaseModel
from moto.core.model_instances import reset_model_data
from moto.core.responses import ActionResult, BaseResponse
from moto.core.serialize import TimestampSerializer
from moto.core.utils import get_service_model
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize, dynamo_json_dump
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.dynamodbstreams.models import dynamodbstreams_backends
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_server.werkzeug_app import (
    BackendRequest,
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import EnvironBuilder

from local.journal import Journal

log = logging.getLogger("local.dynamodb")

SNAPSHOT_FORMAT = 2
SNAPSHOT_FILE = "dynamodb.json"
JOURNAL_FILE = "journal"
_DYNAMODB = "DynamoDB_20120810."
_GET_RECORDS = "DynamoDBStreams_20120810.GetRecords"
_WRITES = frozenset(
    {
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
    }
)
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/")

StartResponse = Callable[..., Any]


class _QuietRequestHandler(MotoRequestHandler):
    """No access log line per request (errors are still logged)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _error(start_response: StartResponse, status: str, kind: str, message: str) -> list[bytes]:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{kind}", "message": message}).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))])
    return [body]


def _call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app to the end: its status, headers and whole body."""
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer.update(status=status, headers=headers)

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return answer["status"], answer["headers"], body


# The two services the stack talks to, by the prefix of X-Amz-Target; moto's handler class for each.
_HANDLERS: dict[str, type[BaseResponse]] = {
    "DynamoDB_20120810": DynamoHandler,
    "DynamoDBStreams_20120810": DynamoDBStreamsHandler,
}


def _dispatch(environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes] | None:
    """moto's handler for the request's service, called as moto's Flask view calls it; None for another service.

    moto's server finds the service of each request by listing its own package folder and trying every
    backend's URL patterns (2 ms a request here), then runs Flask around the handler (1 ms); the stack's
    requests name their service in X-Amz-Target.
    """
    handler = _HANDLERS.get((environ.get("HTTP_X_AMZ_TARGET") or "").partition(".")[0])
    if handler is None:
        return None
    request = BackendRequest(environ)
    try:
        status, headers, content = handler.dispatch(request, request.raw_url, dict(request.headers))
    except ClientError as error:  # as moto's Flask view answers it
        status, headers, content = 400, {}, error.response["Error"]["Message"]
    body = content.encode() if isinstance(content, str) else bytes(content or b"")
    fields = [(name, str(value)) for name, value in headers.items() if name.lower() not in ("status", "content-length")]
    fields.append(("Content-Length", str(len(body))))
    return f"{status} {HTTPStatus(int(status)).phrase}", fields, body


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for moto to read again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _tables() -> Iterator[tuple[str, str, Any, Any]]:
    """(account, region, backend, table) for every table moto holds."""
    for account, regions in list(dynamodb_backends.items()):
        for region, backend in list(regions.items()):
            for table in list(backend.tables.values()):
                yield account, region, backend, table


class _TransactionUndo:
    """What a transaction may change, to put back if it fails: copies of the items it names, as they were
    before it, and the length of each touched table's stream."""

    def __init__(self, backend: Any, transact_items: list[dict[str, Any]]) -> None:
        self.tables: dict[str, Any] = {}
        self._items: list[tuple[Any, DynamoType, DynamoType | None, Any]] = []
        for entry in transact_items:
            for operation in entry.values() if isinstance(entry, dict) else ():
                table = backend.tables.get(operation.get("TableName")) if isinstance(operation, dict) else None
                if table is None:
                    continue
                self.tables[table.name] = table
                key = operation.get("Item") or operation.get("Key") or {}
                try:
                    hash_value = DynamoType(key[table.hash_key_attr])
                    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                    current = table.get_item(hash_value, range_value)
                except Exception:  # noqa: BLE001 - moto refuses a malformed key before it writes anything
                    continue
                self._items.append((table, hash_value, range_value, copy.deepcopy(current)))
        self._streams = [
            (table.stream_shard, len(table.stream_shard.items))
            for table in self.tables.values()
            if table.stream_shard is not None
        ]

    def apply(self) -> None:
        for table, hash_value, range_value, item in reversed(self._items):
            holder = table.items if range_value is None else table.items[hash_value]
            slot = hash_value if range_value is None else range_value
            if item is None:
                holder.pop(slot, None)
            else:
                holder[slot] = item
        for shard, length in self._streams:
            del shard.items[length:]


def _transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's TransactWriteItems, without its copy of every table the transaction touches.

    moto backs a transaction up with a deep copy of each whole table, and when the transaction fails puts
    the copies in the tables' place. That costs time in proportion to the table (0.1 s per transaction at
    100 jobs, 0.6 s at 1,200 on this machine, and every job write is a transaction), and the copy's stream
    is a copy too, so a reader's iterators kept reading the old one: the failed transaction's records, then
    nothing ever again. Here moto's "copy" of a table is the table itself, and a failed transaction is undone
    item by item: the items it named go back to what they were, its stream records are dropped.
    """
    undo = _TransactionUndo(backend, transact_items)
    for table in undo.tables.values():
        table.__deepcopy__ = lambda memo, table=table: table  # what copy.deepcopy(table) returns now
    try:
        type(backend).transact_write_items(backend, transact_items)
    except BaseException:
        undo.apply()
        raise
    finally:
        for table in undo.tables.values():
            del table.__deepcopy__


def _undo_instead_of_copies() -> None:
    """Every DynamoDB backend runs its transactions through `_transact_write_items`."""
    for regions in list(dynamodb_backends.values()):
        for backend in list(regions.values()):
            if "transact_write_items" not in vars(backend):
                backend.transact_write_items = functools.partial(_transact_write_items, backend)


# Operations whose answers hold only data: items, keys, counts, consumed capacity, stream records.
_PLAIN_ANSWERS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "GetRecords",
    }
)
_JSON_1_0 = "application/x-amz-json-1.0"  # both DynamoDB's and DynamoDB Streams' protocol
_moto_serialized = BaseResponse.serialized


class _UnconvertedResult(ActionResult):
    """What moto's DynamoDB handlers return as `DynamoResult`, left as they built it (DynamoType values
    inside): `DynamoResult` copies the whole result into plain values first, a third of a BatchGetItem's
    time, and `_serialized` writes the DynamoType values as JSON directly."""


def _without_none(value: Any) -> Any:
    """`value` without its None members, in every dict and list (moto's serializer leaves them out)."""
    if isinstance(value, dict):
        return {key: _without_none(member) for key, member in value.items() if member is not None}
    if isinstance(value, list):
        return [_without_none(member) for member in value]
    return value


@functools.cache
def _output_members(service: str, action: str) -> frozenset[str]:
    """The members of the operation's output in botocore's model: moto's serializer writes only those."""
    return frozenset(get_service_model(service).operation_model(action).output_shape.members)


def _json_value(value: object) -> Any:
    """What json.dumps cannot write itself: DynamoDB values, timestamps, model objects."""
    if isinstance(value, DynamoType):
        if value.type in ("B", "BS"):
            raise TypeError("binary values are left to moto's serializer")
        return {value.type: value.value}
    if isinstance(value, datetime):  # moto's own conversion for JSON protocols, to the millisecond
        return TimestampSerializer._timestamp_unixtimestamp(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"{type(value).__name__} is not plain JSON")


def _serialized(handler: BaseResponse, action_result: ActionResult) -> tuple[int, dict[str, str], str]:
    """A data answer written as the JSON it already is; anything else (errors included) by moto's serializer.

    moto 5.2 writes every answer by walking botocore's model of the operation's output, value by value:
    0.35 s for a BatchGetItem of 100 jobs on this machine, nine tenths of the server's time during a sync.
    These operations' results are dicts of data (DynamoDB JSON, counts, keys, stream records), so
    json.dumps writes the same document: tests/unit/test_local_dynamodb_server.py compares the two.
    """
    result, action = action_result.result, handler._get_action()
    if isinstance(result, dict) and action in _PLAIN_ANSWERS:
        members = _output_members(handler.boto3_service_name, action)
        try:
            body = json.dumps(
                _without_none({name: value for name, value in result.items() if name in members}), default=_json_value
            )
        except (TypeError, ValueError):
            pass  # a binary value or another type the model converts: moto's serializer knows how
        else:
            return 200, {"Content-Type": _JSON_1_0, **handler.response_headers}, body
    if isinstance(action_result, _UnconvertedResult):
        action_result = DynamoResult(result)
    return _moto_serialized(handler, action_result)


def _value_size(value: DynamoType) -> int:
    """moto's `DynamoType.size`, without its method calls per value and its copies of map members."""
    kind, data = value.type, value.value
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return len(str(data))
    if kind in ("SS", "BS"):
        return sum(bytesize(member) for member in data)
    if kind == "NS":
        return sum(len(str(member)) for member in data)
    if kind == "L":
        return sum(_value_size(member) for member in data)
    if kind == "M":
        return sum(
            bytesize(name) + _value_size(member if type(member) is DynamoType else DynamoType(member))
            for name, member in data.items()
        )
    if isinstance(data, bool):
        return 1
    return bytesize(data)


def _item_size(item: Item) -> int:
    """moto's `Item.size` (the 16 MB and 1 MB limits of BatchGetItem, Query and Scan ask it of every item
    they return, BatchGetItem twice): the same sum, a third of the time."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.attrs.items())


_ITEM_SIZE_LIMIT = 405_000  # moto's: "between 409 and 410KB" measured, 400 KB documented


def _size_of(value: Any) -> int:
    return _value_size(value) if type(value) is DynamoType else bytesize(str(value))


def _limited_setitem(attrs: LimitedSizeDict, name: str, value: Any) -> None:
    """moto's `LimitedSizeDict.__setitem__` (an item's attribute is set: refused past the size limit), with
    the sizes taken by `_value_size`."""
    if (
        sum(_size_of(key) + _size_of(member) for key, member in attrs.items()) + _size_of(name) + _size_of(value)
        > _ITEM_SIZE_LIMIT
    ):
        raise ItemSizeTooLarge
    dict.__setitem__(attrs, name, value)


def _new_item(item: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    """moto's `Item.__init__`, the size limit checked once on the whole item rather than at each attribute
    over every attribute before it (a quadratic third of a 99-job transaction's time). Sizes only add up,
    so an item is refused exactly when moto would refuse it."""
    item.hash_key = hash_key
    item.range_key = range_key
    values = {name: DynamoType(value) for name, value in attrs.items()}
    if sum(_size_of(name) + _value_size(value) for name, value in values.items()) > _ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    item.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(item.attrs, values)


def _speed_up_moto() -> None:
    """Install the shortcuts above in moto (once per process; each does what moto's own code does):
    data answers skip moto's conversion and serializer (`_serialized`), item sizes are summed once
    (`_item_size`, `_new_item`, `_limited_setitem`), and moto looks a handler's action methods up once
    per class instead of once per request (inspect.getmembers, 1 ms)."""
    for handler in _HANDLERS.values():
        handler.serialized = _serialized  # type: ignore[method-assign]
    moto.dynamodb.responses.DynamoResult = _UnconvertedResult  # what the handlers' methods return
    Item.size = _item_size  # type: ignore[method-assign]
    Item.__init__ = _new_item  # type: ignore[method-assign]
    LimitedSizeDict.__setitem__ = _limited_setitem  # type: ignore[method-assign,assignment]
    names = moto.core.responses.method_names_from_class
    if not hasattr(names, "cache_info"):
        moto.core.responses.method_names_from_class = functools.cache(names)
    _stop_tracking_instances()


def _untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    return super(BaseModel, cls).__new__(cls)  # type: ignore[misc]


def _stop_tracking_instances() -> None:
    """moto's models keep every instance ever made, for its dashboard (`BaseModel.__new__` appends each to
    its class's `instances_tracked`): every item written, copied or read, every stream record and shard
    iterator, for as long as the process runs. The stack grew by 5-7 MB a minute under a busy simulator
    for it (tests/soak/memwatch.py). Nothing here reads that list: instances are no longer tracked, and
    those tracked so far are let go."""
    BaseModel.__new__ = staticmethod(_untracked_new)  # type: ignore[method-assign]
    reset_model_data()


def _forget_stream_records() -> None:
    """Drop every stream record: a restore is not news for any reader."""
    for _, _, _, table in _tables():
        shard = table.stream_shard
        if shard is not None:
            shard.starting_sequence_number += len(shard.items)
            shard.items.clear()


def _fsync_directory(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def read_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot in `path` when it is this server's format; None when absent or in an older format."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        return None
    return data


class LocalDynamoDB:
    """moto's DynamoDB on 127.0.0.1, serialized, journaled and snapshotted in `state_dir`.

    `start()` serves, `restore()` (after the caller created the tables) loads
    the snapshot and replays the journal, `compact()` / `compact_if_due()` fold
    the journal into a new snapshot, `stop()` compacts one last time and stops.
    """

    def __init__(self, state_dir: Path, port: int = 0, compact_bytes: int = 4 << 20, compact_writes: int = 500) -> None:
        self.state_dir = state_dir
        self.snapshot_path = state_dir / SNAPSHOT_FILE
        self.compact_bytes = compact_bytes
        self.compact_writes = compact_writes
        self._port = port
        _speed_up_moto()
        self._app = DomainDispatcherApplication(create_backend_app)
        self.journal = Journal(state_dir / JOURNAL_FILE)
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._restored = False
        self._closed = False
        self._failure: BaseException | None = None
        self._sequence = 0  # of the last journaled write
        self._changed = threading.Condition()
        self._writes = 0  # answered writes since start, for readers of the stream to wait on
        self._snapshot_sequence: int | None = None  # of the last write the snapshot on disk holds

    # ----------------------------------------------------------------- serving

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> str:
        """Serve on a loopback port (a free one unless given); returns the endpoint URL."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._server = make_server("127.0.0.1", self._port, self, threaded=True, request_handler=_QuietRequestHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="dynamodb", daemon=True
        )
        self._thread.start()
        return self.url

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        action = target[len(_DYNAMODB) :] if target.startswith(_DYNAMODB) else ""
        journaled = action in _WRITES
        body = _read_body(environ) if journaled or target == _GET_RECORDS else b""
        with self._lock:
            if self._failure is not None:
                return _error(start_response, "500 Internal Server Error", "InternalServerError", str(self._failure))
            if journaled and (self._closed or not self._restored):
                state = "stopped" if self._closed else "not restored yet"
                return _error(start_response, "503 Service Unavailable", "ServiceUnavailable", f"the store is {state}")
            if target == _GET_RECORDS and not self._trim_consumed(body):
                return _error(
                    start_response, "400 Bad Request", "ExpiredIteratorException", "Iterator expired or unknown"
                )
            status, headers, payload = self._handle(environ, action)
            if journaled and status.startswith("200"):
                try:
                    self._append(target, environ, body)
                except Exception as error:  # noqa: BLE001 - the answer must not claim a write that is not on disk
                    self._failure = error
                    log.exception("the journal failed; every request is refused from now on")
                    return _error(start_response, "500 Internal Server Error", "InternalServerError", str(error))
        if journaled and status.startswith("200"):
            with self._changed:
                self._writes += 1
                self._changed.notify_all()
        start_response(status, headers)
        return [payload]

    def _handle(self, environ: dict[str, Any], action: str) -> tuple[str, list[tuple[str, str]], bytes]:
        """moto's answer to one request (the lock held), transactions undone item by item when they fail."""
        if action == "TransactWriteItems":
            _undo_instead_of_copies()
        return _dispatch(environ) or _call(self._app, environ)

    @property
    def writes(self) -> int:
        """How many writes were answered since start: a reader of the streams waits for it to move."""
        return self._writes

    def wait_for_write(self, seen: int, timeout: float) -> int:
        """The write count once it is beyond `seen`, or after `timeout` seconds or a `wake()`."""
        with self._changed:
            if self._writes == seen:
                self._changed.wait(timeout)
            return self._writes

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _append(self, target: str, environ: dict[str, Any], body: bytes) -> None:
        credential = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION") or "")
        key, region = credential.groups() if credential else ("", "us-east-1")
        entry = {"seq": self._sequence + 1, "key": key, "region": region, "target": target, "body": body.decode()}
        self.journal.append(entry)
        self._sequence += 1

    def _trim_consumed(self, body: bytes) -> bool:
        """Before a GetRecords: drop the records its iterator is past. False for an unknown iterator."""
        try:
            arn = json.loads(body)["ShardIterator"]
            _, _, _, region, account = arn.split(":", 5)[:5]
        except (ValueError, KeyError, TypeError):
            return True  # let moto answer a malformed request
        if account not in dynamodbstreams_backends:
            return False
        backend = dynamodbstreams_backends[account][region]
        iterator = backend.shard_iterators.get(arn)
        if iterator is None:
            return False
        shard = iterator.stream_shard
        consumed = iterator.sequence_number - shard.starting_sequence_number
        if consumed > 0:
            del shard.items[:consumed]
            shard.starting_sequence_number += consumed
        # Every GetRecords leaves a new iterator behind; the ones at or before this one are spent.
        for other_arn, other in list(backend.shard_iterators.items()):
            if other.stream_shard is shard and other.sequence_number <= iterator.sequence_number and other_arn != arn:
                del backend.shard_iterators[other_arn]
        return True

    # --------------------------------------------------------------- restoring

    def restore(self) -> int:
        """Load the snapshot, replay the journal over it, then accept writes; returns the number of items."""
        with self._lock:
            if self._restored:
                raise RuntimeError("restored already")
            snapshot = read_snapshot(self.snapshot_path)
            after = 0
            if snapshot is not None:
                after = self._snapshot_sequence = snapshot["sequence"]
                self._load(snapshot["tables"])
            entries = [entry for entry in self.journal.read() if entry["seq"] > after]
            self._replay(entries)
            self._sequence = entries[-1]["seq"] if entries else after
            _forget_stream_records()
            self.journal.open()
            self._restored = True
            return self._item_count()

    def _load(self, tables: list[dict[str, Any]]) -> None:
        for table in tables:
            backend = dynamodb_backends[table["account"]][table["region"]]
            if table["name"] not in backend.tables:
                log.warning("table %s is gone: its %d saved items are not loaded", table["name"], len(table["items"]))
                continue
            for item in table["items"]:
                backend.put_item(table["name"], item)

    def _replay(self, entries: list[dict[str, Any]]) -> None:
        failed = 0
        previous = None
        for entry in entries:
            if previous is not None and entry["seq"] != previous + 1:
                log.warning("journal entries %d to %d are missing", previous + 1, entry["seq"] - 1)
            previous = entry["seq"]
            environ = EnvironBuilder(
                method="POST",
                path="/",
                data=entry["body"].encode(),
                headers={
                    "X-Amz-Target": entry["target"],
                    "Content-Type": "application/x-amz-json-1.0",
                    "Authorization": (
                        f"AWS4-HMAC-SHA256 Credential={entry['key']}/20200101/{entry['region']}/dynamodb/aws4_request,"
                        " SignedHeaders=host, Signature=replay"
                    ),
                },
            ).get_environ()
            status, _, payload = self._handle(environ, entry["target"][len(_DYNAMODB) :])
            if not status.startswith("200"):
                failed += 1
                log.warning("journal entry %d (%s) failed again: %s %s", entry["seq"], entry["target"], status, payload)
        if entries:
            log.info("replayed %d journaled writes (%d failed)", len(entries), failed)

    # -------------------------------------------------------------- compacting

    def item_count(self) -> int:
        with self._lock:
            return self._item_count()

    def _item_count(self) -> int:
        return sum(len(table) for _, _, _, table in _tables())

    def compact(self) -> int:
        """Write a snapshot of every table and empty the journal, atomically for writers; returns the item count."""
        with self._lock:
            return self._compact()

    def compact_if_due(self) -> None:
        """Compact once the journal holds `compact_writes` writes or `compact_bytes`: that bounds the replay at
        the next start, which costs moto's whole work for each write again (about 3 ms a write, 10 ms on a
        loaded machine), whereas a snapshot loads in 0.25 s for 1,900 items and is written in 0.05 s."""
        with self._lock:
            if not self._restored or self._failure is not None:
                return
            writes = self._sequence - (self._snapshot_sequence or 0)
            if self.journal.size >= self.compact_bytes or writes >= self.compact_writes:
                self._compact()

    def _compact(self) -> int:
        if not self._restored or self._failure is not None:
            raise RuntimeError("the store is not restored" if not self._restored else str(self._failure))
        if self._snapshot_sequence == self._sequence and self.journal.size == 0:
            return self._item_count()  # the snapshot on disk is current
        tables = [
            {
                "account": account,
                "region": region,
                "name": table.name,
                "items": [item.to_json()["Attributes"] for item in table.all_items()],
            }
            for account, region, _, table in _tables()
        ]
        text = dynamo_json_dump({"format": SNAPSHOT_FORMAT, "sequence": self._sequence, "tables": tables})
        handle, temporary = tempfile.mkstemp(dir=self.state_dir, prefix=".snapshot-")
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.snapshot_path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_directory(self.state_dir)
        self._snapshot_sequence = self._sequence
        self.journal.clear()  # a crash before this line is harmless: the snapshot names the last write it holds
        return sum(len(table["items"]) for table in tables)

    def stop(self) -> int:
        """Stop serving, compact one last time (when the store is whole) and close; returns the item count."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            saved = self._compact() if self._restored and self._failure is None else 0
            self._closed = True
            self.journal.close()
        return saved
