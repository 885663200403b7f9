"""What every figure runs in: the template's tables under moto, metered; the fake Replicate; a clock without moto.

Each double is made to cost what the real service costs, and what moto itself costs is taken out:

- **DynamoDB** is moto, whose own work (milliseconds a call, more as a table grows) is an artefact of
  the bench. So DynamoDB is *counted* (requests, items read, items written: botocore's
  `before-parameter-build` and `after-call` hooks on every client), and each request *waits* a modelled
  DynamoDB latency instead (5 ms; 10 ms for transactions and batches).
- **Wall times** are measured with moto's own time subtracted: the time during which moto was working
  and no modelled wait (a provider answer, a DynamoDB latency, a WebSocket post) was under way. The
  invocation's clock (`jobsync.deadline`) runs on the same adjusted time, so a handler's deadline is
  not eaten by moto either.
- **Transaction conflicts**, which moto does not have: a TransactWriteItems holds its items for its
  modelled latency from its arrival; another transaction or single write on one of them in that
  window is refused as DynamoDB refuses it (TransactionCanceledException with a TransactionConflict
  reason, or TransactionConflictException), after its own round trip.
- **API Gateway's management API** answers each post after 20 ms (moto is not involved).
- **Replicate** is bench.provider.FakeReplicate: 50 ms an answer, 429 past 3,000 reads a minute.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tests.fakes.aws import REGION, TABLE_NAMES

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "jobsync"
API_TOKEN = "bench-api-token"
# An execute-api host, as the template's management URL is: posts to it are answered here, not by moto.
MANAGEMENT_URL = "https://benchws000.execute-api.us-east-1.amazonaws.com/live"

DYNAMODB_SECONDS = 0.005  # a single-item request or a query (DynamoDB: single-digit milliseconds)
DYNAMODB_HEAVY_SECONDS = 0.010  # transactions and batches (a transaction is two round trips inside DynamoDB)
POST_SECONDS = 0.020  # one post to a WebSocket connection through API Gateway's management API
_HEAVY = frozenset({"TransactWriteItems", "TransactGetItems", "BatchGetItem", "BatchWriteItem"})
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
_SINGLE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})


def use_repo_paths() -> None:
    """The layer where Lambda puts /opt/python, and the repository (for `local` and `bench`)."""
    for path in (str(ROOT), str(LAYER)):
        if path not in sys.path:
            sys.path.insert(0, path)


@lru_cache(maxsize=1)
def template() -> dict[str, Any]:
    from local.template import load_template

    return load_template()


@lru_cache(maxsize=1)
def timeouts() -> dict[str, int]:
    """Function folder -> its Timeout in template.yaml."""
    from local.template import functions

    return {spec.folder: spec.timeout for spec in functions(template()).values()}


@lru_cache(maxsize=1)
def _key_names() -> dict[str, tuple[str, ...]]:
    """Table name -> its key attributes, from the template."""
    from local.template import table_specs

    return {
        TABLE_NAMES[logical_id]: tuple(part["AttributeName"] for part in spec.create_kwargs["KeySchema"])
        for logical_id, spec in table_specs(template()).items()
        if logical_id in TABLE_NAMES
    }


def _deployed_defaults() -> dict[str, str]:
    """The template's parameter defaults that change behaviour: the bench runs what a deployment runs."""
    from local.template import parameters

    defaults = parameters(template())
    return {
        "SIMPLETUNER_JOB_POLL_INTERVAL": str(defaults["PollIntervalSeconds"]),
        "JOBSYNC_POLL_SCHEDULE_PERIOD_SECONDS": "60",
        "JOBSYNC_SYNC_CAP": str(defaults["SyncCapPerList"]),
        "JOBSYNC_MAX_CONNECTIONS_PER_IP": str(defaults["MaxConnectionsPerIp"]),
    }


_CLEARED = (
    "REPLICATE_WEBHOOK_SECRET",
    "REPLICATE_API_TOKEN_SECRET_ARN",
    "JOBSYNC_WEBHOOK_URL",
    "JOBSYNC_CONFIG",
    "JOBSYNC_POLLING_ENABLED",
    "JOBSYNC_HARDWARE_MAP",
    "JOBSYNC_LOG_REFRESH_SECONDS",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
)


def environment(**overrides: str) -> dict[str, str]:
    from bench.provider import BASE_URL, TOKEN
    from tests.fakes.aws import function_environment

    values = {
        **function_environment(
            api_token=API_TOKEN,
            replicate_token=TOKEN,
            replicate_base_url=BASE_URL,
            management_url=MANAGEMENT_URL,
            metrics_namespace="jobsync-bench",
        ),
        **_deployed_defaults(),
    }
    values.update(overrides)
    return values


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ (and the variables jobsync reads but the bench does not set, unset) while inside."""
    names = set(values) | set(_CLEARED)
    saved = {name: os.environ.get(name) for name in names}
    for name in _CLEARED:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ----------------------------------------------------------------------------------------- time


class Timeline:
    """When moto was working while nothing modelled was under way: that time is taken out of wall times.

    `busy("moto")` wraps moto's work on a request, `busy("wait")` every modelled wait (a provider
    answer, a DynamoDB latency, a WebSocket post). Time with moto working and no wait under way in any
    thread is moto's alone; with a wait under way, moto's work overlapped it and cost no wall time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: Counter[str] = Counter()
        self._since = time.monotonic()
        self._moto_only = 0.0

    def _account(self, now: float) -> None:
        if self._busy["moto"] and not self._busy["wait"]:
            self._moto_only += now - self._since
        self._since = now

    @contextlib.contextmanager
    def busy(self, kind: str) -> Iterator[None]:
        with self._lock:
            self._account(time.monotonic())
            self._busy[kind] += 1
        try:
            yield
        finally:
            with self._lock:
                self._account(time.monotonic())
                self._busy[kind] -= 1

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            with self.busy("wait"):
                time.sleep(seconds)

    def moto_only(self) -> float:
        with self._lock:
            self._account(time.monotonic())
            return self._moto_only

    def monotonic(self) -> float:
        """A monotonic clock that stands still while only moto works."""
        return time.monotonic() - self.moto_only()


@dataclass
class Lap:
    wall: float = 0.0
    moto: float = 0.0

    @property
    def seconds(self) -> float:
        """Wall time without moto's own (see Timeline)."""
        return self.wall - self.moto


class _AdjustedTime:
    """Stands in for `time` in jobsync.deadline: the invocation's clock skips moto's own time."""

    def __init__(self, timeline: Timeline) -> None:
        self.monotonic = timeline.monotonic

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@dataclass
class BenchContext:
    """Lambda's context for `function_name` with the template's timeout, on the adjusted clock."""

    function_name: str
    timeline: Timeline
    timeout_seconds: float
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = "bench"
    log_group_name: str = ""
    log_stream_name: str = "bench"
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.timeline.monotonic()

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = self.timeline.monotonic() - self.started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


# ------------------------------------------------------------------------------------ counting


@dataclass
class Counts:
    """What DynamoDB and API Gateway were asked, as the code asked it (retries inside botocore excluded)."""

    calls: Counter[str] = field(default_factory=Counter)  # operation -> API calls
    items_read: int = 0  # items DynamoDB read: GetItem's item, ScannedCount of a query, a batch's items
    write_requests: int = 0
    write_items: int = 0  # a transaction or a batch writes several
    conflicts: int = 0  # requests refused as a transaction conflict (see AwsDouble)
    errors: Counter[str] = field(default_factory=Counter)  # error code -> answers
    posts: int = 0  # posts to WebSocket connections

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            calls=self.calls - other.calls,
            items_read=self.items_read - other.items_read,
            write_requests=self.write_requests - other.write_requests,
            write_items=self.write_items - other.write_items,
            conflicts=self.conflicts - other.conflicts,
            errors=self.errors - other.errors,
            posts=self.posts - other.posts,
        )


def _items_in(operation: str, params: dict[str, Any]) -> int:
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    if operation == "BatchWriteItem":
        return sum(len(requests) for requests in params.get("RequestItems", {}).values())
    return 1


def _items_read(operation: str, parsed: dict[str, Any]) -> int:
    if operation == "GetItem":
        return 1 if parsed.get("Item") else 0
    if operation in ("Query", "Scan"):
        return int(parsed.get("ScannedCount", parsed.get("Count", 0)))
    if operation == "BatchGetItem":
        return sum(len(items) for items in parsed.get("Responses", {}).values())
    if operation == "TransactGetItems":
        return sum(1 for response in parsed.get("Responses", []) if response.get("Item"))
    return 0


class Meter:
    """Counts every DynamoDB request of every client made from a session it is hooked on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = Counts()
        self.enabled = True

    def hook(self, session: Any) -> None:
        session.events.register("before-parameter-build.dynamodb", self._before)
        session.events.register("after-call.dynamodb", self._after)

    def unhook(self, session: Any) -> None:
        session.events.unregister("before-parameter-build.dynamodb", self._before)
        session.events.unregister("after-call.dynamodb", self._after)

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.enabled and model.name in WRITE_OPERATIONS:
            with self._lock:
                self._counts.write_requests += 1
                self._counts.write_items += _items_in(model.name, params)

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._counts.calls[model.name] += 1
            error = parsed.get("Error")
            if error:
                self._counts.errors[error.get("Code", "?")] += 1
            else:
                self._counts.items_read += _items_read(model.name, parsed)

    def conflict(self) -> None:
        if self.enabled:
            with self._lock:
                self._counts.conflicts += 1

    def post(self) -> None:
        if self.enabled:
            with self._lock:
                self._counts.posts += 1

    def snapshot(self) -> Counts:
        with self._lock:
            return copy.deepcopy(self._counts)


# ------------------------------------------------------------------------------ the AWS double

_Response = tuple[int, dict[str, str], Any]
_ItemKey = tuple[str, str]


class AwsDouble:
    """Sits in front of moto (wrapping its botocore stubber): latencies, conflicts, the management API."""

    def __init__(self, timeline: Timeline, meter: Meter, process_request: Callable[[Any], _Response | None]) -> None:
        self.timeline = timeline
        self.meter = meter
        self.modelled = True  # off while a figure sets its world up
        self._process_request = process_request
        self.moto_lock = threading.RLock()  # DynamoDB applies each request atomically; moto across threads does not
        self._holds_lock = threading.Lock()
        self._held: dict[_ItemKey, float] = {}  # item -> until when a transaction holds it

    def __call__(self, request: Any) -> _Response | None:
        url = str(request.url)
        if ".execute-api." in url and "/@connections/" in url:
            return self._post()
        target = _header(request, "X-Amz-Target")
        if not self.modelled or not target.startswith("DynamoDB_"):
            return self._at_moto(request)
        operation = target.rpartition(".")[2]
        item_keys = self._written_keys(operation, request.body) if operation in WRITE_OPERATIONS else []
        latency = DYNAMODB_HEAVY_SECONDS if operation in _HEAVY else DYNAMODB_SECONDS
        refused = self._hold(operation, item_keys, latency)
        self.timeline.wait(latency)
        return refused if refused is not None else self._at_moto(request)

    def send(self, request: Any) -> Any:
        """The WebSocket pusher's HTTP send (it signs its posts itself, past botocore's client and moto)."""
        from types import SimpleNamespace

        if ".execute-api." not in request.url or "/@connections/" not in request.url:
            raise RuntimeError(f"the bench answers posts to the management API only, not {request.url}")
        status, _, _ = self._post()
        return SimpleNamespace(status_code=status)

    def _at_moto(self, request: Any) -> _Response | None:
        with self.moto_lock, self.timeline.busy("moto"):
            return self._process_request(request)

    def _post(self) -> _Response:
        if self.modelled:
            self.timeline.wait(POST_SECONDS)
        self.meter.post()
        return 200, {"x-amzn-RequestId": "bench"}, b""

    def _written_keys(self, operation: str, body: Any) -> list[_ItemKey]:
        """The key of every item the request writes, in request order (a transaction's ConditionCheck too)."""
        request = json.loads(body)
        if operation in _SINGLE_WRITES:
            return [self._key(request)]
        if operation == "TransactWriteItems":
            return [self._key(next(iter(action.values()))) for action in request.get("TransactItems", [])]
        return []  # BatchWriteItem: not transactional, never refused here

    @staticmethod
    def _key(action: dict[str, Any]) -> _ItemKey:
        table = action["TableName"]
        attributes = action.get("Key") or action.get("Item") or {}
        key = {name: attributes.get(name) for name in _key_names().get(table, ())}
        return table, json.dumps(key, sort_keys=True)

    def _hold(self, operation: str, item_keys: list[_ItemKey], latency: float) -> _Response | None:
        """Refuse the request when a transaction holds one of its items; else, for a transaction, hold them.

        A transaction holds its items for its modelled latency from its arrival, by the clock: a thread
        of the bench that the machine wakes late does not hold them longer.
        """
        if not item_keys:
            return None
        now = time.monotonic()
        with self._holds_lock:
            clashing = {key for key in item_keys if self._held.get(key, 0.0) > now}
            if not clashing:
                if operation == "TransactWriteItems":
                    self._held.update(dict.fromkeys(item_keys, now + latency))
                return None
        self.meter.conflict()
        return _conflict(operation, item_keys, clashing)


def _header(request: Any, name: str) -> str:
    value = request.headers.get(name, b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _conflict(operation: str, item_keys: list[_ItemKey], clashing: set[_ItemKey]) -> _Response:
    prefix = "com.amazonaws.dynamodb.v20120810#"
    if operation == "TransactWriteItems":
        reasons = [
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
            if key in clashing
            else {"Code": "None"}
            for key in item_keys
        ]
        codes = ", ".join(reason["Code"] for reason in reasons)
        body = {
            "__type": prefix + "TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            "CancellationReasons": reasons,
        }
    else:
        body = {"__type": prefix + "TransactionConflictException", "message": "Transaction is ongoing for the item"}
    return 400, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "bench"}, json.dumps(body)


# ---------------------------------------------------------------------------------- a scenario


class Scenario:
    """One figure's world: fresh tables from template.yaml under moto, a fresh fake Replicate, zeroed meters.

    with Scenario() as bench:
        ...set the world up (bench.setup() turns the models and the meters off)...
        with bench.stopwatch() as lap, bench.invocation("poller"):
            poll_tick()
    """

    def __init__(
        self,
        *,
        provider_latency: float = 0.050,
        reads_per_minute: int = 3000,
        page_size: int = 100,
        modelled: bool = True,
        env: dict[str, str] | None = None,
        check_answers: bool = False,
        shared_session: bool = False,
        invocation_time: Any | None = None,
    ) -> None:
        """`shared_session`: one boto3 session for every such scenario of the process (the quick tests' many small
        worlds), instead of a new one whose first clients load endpoint data and service models again.
        `invocation_time`: what stands in for `time` in the invocations' deadlines (default: the wall clock
        less moto's own time); the quick tests count requests and pass a clock that moves only when they move
        it, so a loaded machine cannot make a sync stop early and change the counts."""
        from bench.provider import FakeReplicate

        self.timeline = Timeline()
        self.meter = Meter()
        self.provider = FakeReplicate(
            self.timeline, latency=provider_latency, reads_per_minute=reads_per_minute, page_size=page_size
        )
        self._modelled = modelled
        self._env = env or {}
        self._stack = contextlib.ExitStack()
        self.double: AwsDouble | None = None
        self.check_answers = check_answers
        self._shared_session = shared_session
        self._invocation_time = invocation_time

    def __enter__(self) -> Scenario:
        import boto3
        import respx
        from moto import mock_aws
        from moto.core.models import botocore_stubber

        from bench.provider import BASE_URL
        from jobsync import deadline, wiring
        from jobsync.push import websocket

        stack = self._stack
        try:
            stack.enter_context(environ(environment(**self._env)))
            stack.enter_context(mock_aws())
            stack.enter_context(_cheap_transaction_rollback())
            stack.enter_context(_fast_dynamodb_answers(check=self.check_answers))
            if self._shared_session:
                session = _process_session()
                stack.enter_context(patched(boto3, "DEFAULT_SESSION", session))
            else:
                session = boto3.setup_default_session(region_name=REGION) or boto3._get_default_session()
            self.meter.hook(session)
            stack.callback(self.meter.unhook, session)
            self.double = double = AwsDouble(self.timeline, self.meter, botocore_stubber.process_request)
            stack.enter_context(patched(botocore_stubber, "process_request", self.double))
            stack.enter_context(patched(deadline, "time", self._invocation_time or _AdjustedTime(self.timeline)))
            stack.enter_context(patched(websocket, "http_send", lambda pool_size: double.send))
            router = stack.enter_context(respx.mock(assert_all_called=False))
            router.route(url__startswith=BASE_URL).mock(side_effect=self.provider)
            wiring.reset()
            stack.callback(wiring.reset)
            with self.setup():
                _create_tables()
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    # ---- while setting a world up -------------------------------------------------------

    @contextlib.contextmanager
    def setup(self) -> Iterator[None]:
        """Neither counted nor modelled: what a figure does to set its world up."""
        assert self.double is not None
        self.meter.enabled, self.double.modelled = False, False
        try:
            yield
        finally:
            self.meter.enabled, self.double.modelled = True, self._modelled

    def put_items(self, table: str, items: list[dict[str, Any]]) -> None:
        """Write items straight into moto's table (no request, no condition, no transaction): setting up only.

        Ten thousand jobs written through requests took a quarter of a minute of moto's time.
        """
        from boto3.dynamodb.types import TypeSerializer
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        backend, serializer = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION], TypeSerializer()
        assert self.double is not None
        with self.double.moto_lock:
            for item in items:
                backend.put_item(table, {name: serializer.serialize(value) for name, value in item.items()})

    # ---- measuring ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def stopwatch(self) -> Iterator[Lap]:
        lap = Lap()
        started, moto = time.monotonic(), self.timeline.moto_only()
        try:
            yield lap
        finally:
            lap.wall = time.monotonic() - started
            lap.moto = self.timeline.moto_only() - moto

    def context(self, function: str) -> BenchContext:
        return BenchContext(function, self.timeline, float(timeouts()[function]))

    @contextlib.contextmanager
    def invocation(self, function: str) -> Iterator[BenchContext]:
        """Service code run as inside `function`'s invocation: its deadline is the template's timeout."""
        from jobsync.deadline import invocation_deadline

        context = self.context(function)
        with invocation_deadline(context):
            yield context

    def handler(self, function: str) -> Callable[[dict[str, Any], Any], Any]:
        from local.lambda_runtime import load_handler

        return load_handler(f"functions/{function}/")

    def call_http(
        self, function: str, *, path: dict[str, str] | None = None, query: dict[str, str] | None = None
    ) -> tuple[int, Any, Lap]:
        """Invoke an HTTP function with its events/ sample event (token, path and query replaced)."""
        event = json.loads((ROOT / "events" / f"{function}.json").read_text())
        if path is not None:
            event["pathParameters"] = path
        if query is not None:
            event["queryStringParameters"] = query
        headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "authorization"}
        event["headers"] = {**headers, "authorization": f"Bearer {API_TOKEN}"}
        handler = self.handler(function)
        with self.stopwatch() as lap:
            answer = handler(event, self.context(function))
        body = json.loads(answer["body"]) if answer.get("body") else None
        return answer["statusCode"], body, lap


@lru_cache(maxsize=1)
def _process_session() -> Any:
    import boto3

    return boto3.session.Session(region_name=REGION)


_empty_tables: dict[str, Any] = {}


def _create_tables() -> None:
    """The template's tables in the current moto: created through the API by a process's first scenario, then
    copied, empty, from what it created (moto takes a tenth of a second or more to create them; setup only)."""
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from local.template import create_tables

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    if "tables" in _empty_tables:
        backend.tables = copy.deepcopy(_empty_tables["tables"])
        return
    create_tables(boto3.client("dynamodb", region_name=REGION), template(), TABLE_NAMES.__getitem__)
    _empty_tables["tables"] = copy.deepcopy(backend.tables)


@contextlib.contextmanager
def _cheap_transaction_rollback() -> Iterator[None]:
    """moto's TransactWriteItems keeps only what it touches for a rollback, not a copy of each whole table.

    moto deep-copies every table a transaction writes to (its items and its stream records) so that it
    can roll the transaction back: a cost that grows with the table, seconds a transaction at 10,000
    jobs. Here each transaction keeps a copy of the items it names, and puts them back if it fails.
    """
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    original, real_copy = backend.transact_write_items, models.copy

    class _TablesNotCopied:
        def deepcopy(self, value: Any, *args: Any) -> Any:
            return value if isinstance(value, Table) else real_copy.deepcopy(value, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_copy, name)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for action in transact_items:
            operation = next(iter(action.values()))
            table = self.tables.get(operation.get("TableName"))
            attributes = operation.get("Key") or operation.get("Item") or {}
            if table is None or table.hash_key_attr not in attributes:
                continue
            hash_value = DynamoType(attributes[table.hash_key_attr])
            range_value = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
            current = table.items.get(hash_value)
            if range_value is not None:
                current = (current or {}).get(range_value)
            saved.append((table, hash_value, range_value, copy.deepcopy(current)))
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(saved):
                bucket, key = (
                    (table.items[hash_value], range_value) if range_value is not None else (table.items, hash_value)
                )
                if item is None:
                    bucket.pop(key, None)
                else:
                    bucket[key] = item
            raise

    models.copy = _TablesNotCopied()
    backend.transact_write_items = transact_write_items
    try:
        yield
    finally:
        backend.transact_write_items, models.copy = original, real_copy


_DATA_PLANE = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"}
    | {"BatchGetItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems"}
)


class AnswerMismatch(AssertionError):
    """The fast answer differs from moto's own (only raised with check=True)."""


@contextlib.contextmanager
def _fast_dynamodb_answers(*, check: bool) -> Iterator[None]:
    """moto's answers to item and query requests written with json.dumps, not its model-driven serializer.

    moto 5 serializes each answer by walking botocore's output shapes: a query of 1,000 items took
    seconds. Its results for these operations are already DynamoDB JSON (no timestamps, no binary
    here), so json.dumps writes the same answer; `check=True` (the quick test) compares the two.
    """
    from moto.dynamodb.responses import DynamoResult

    original = DynamoResult.execute_result

    def execute_result(self: Any, context: Any) -> tuple[int, dict[str, str], str]:
        if context.operation_model.name not in _DATA_PLANE or not isinstance(self.result, dict):
            return original(self, context)  # type: ignore[no-any-return]
        body = json.dumps(self.result)
        if check:
            status, _, expected = original(self, context)
            if status != 200 or json.loads(expected) != json.loads(body):
                raise AnswerMismatch(f"{context.operation_model.name}: {expected[:200]} != {body[:200]}")
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    DynamoResult.execute_result = execute_result
    try:
        yield
    finally:
        DynamoResult.execute_result = original


@contextlib.contextmanager
def patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    """`owner.name` is `value` while inside (an instance attribute that was not set is removed again)."""
    had, previous = name in vars(owner), vars(owner).get(name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had:
            setattr(owner, name, previous)
        else:
            delattr(owner, name)


_resource_lock = threading.Lock()


def warm_thread() -> None:
    """Build the DynamoDB clients (one per process, shared by every thread) if nothing built them yet.

    A warm Lambda instance has them already: a figure that times a warm invocation builds them first.
    """
    from jobsync.store import dynamo

    with _resource_lock:
        dynamo.client()
        dynamo.wire_client()
