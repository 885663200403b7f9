"""boto3 DynamoDB access shared by the stores: one client per process taking and answering Python values, and
Table objects bound to it, made lazily."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.transform import TransformationInjector, copy_dynamodb_params
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from jobsync.domain.errors import StoreUnavailable

# Fail fast inside a Lambda instead of letting botocore retry for a minute. One client serves every thread:
# its pool holds a connection for each of the widest fan-out's threads (broadcast_workers, 64 by default).
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10, max_pool_connections=64
)


class _Clients:
    """One generation's DynamoDB clients and Table objects, shared by every thread: botocore's clients are
    thread-safe once made, and each one made costs a cold start (or a thread of a pool) 10-60 ms of CPU."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.converting = boto3.client("dynamodb", config=_CLIENT_CONFIG)
        _convert_python_values(self.converting)
        self.tables: dict[str, Table] = {}
        self.wire: Any = None


_clients: _Clients | None = None
# Making a client from boto3's one session is not thread-safe: one thread makes them, under this lock.
_clients_lock = threading.Lock()
_generation = 0


def _current() -> _Clients:
    clients = _clients
    if clients is None or clients.generation != _generation:
        with _clients_lock:
            clients = _current_locked()
    return clients


def _current_locked() -> _Clients:
    global _clients
    if _clients is None or _clients.generation != _generation:
        _clients = _Clients(_generation)
    return _clients


def client() -> Any:
    """The DynamoDB client: it takes and answers plain Python values (boto3 converts them both ways) and
    builds condition objects (Key, Attr) into expressions.

    Not boto3's resource: making one loads the resource model and builds classes from it (about 30-50 ms of a
    cold start's CPU, with the garbage collections they bring) only to hand every call to a client like this
    one, and a resource must not be shared between threads. The conversions are boto3's own, registered on a
    plain client as its DynamoDB resource registers them on its client
    (boto3.dynamodb.transform.DynamoDBHighLevelResource.__init__).
    The endpoint comes from AWS_ENDPOINT_URL_DYNAMODB when set (the local stack's moto server).
    """
    return _current().converting


def _convert_python_values(dynamodb: Any) -> None:
    """Register boto3's DynamoDB conversions on `dynamodb`'s events, as DynamoDBHighLevelResource does."""
    events = dynamodb.meta.events
    # The caller's values are copied before they are converted in place.
    events.register("provide-client-params.dynamodb", copy_dynamodb_params, unique_id="dynamodb-create-params-copy")
    injector = TransformationInjector()
    events.register(
        "before-parameter-build.dynamodb", _condition_expressions, unique_id="dynamodb-condition-expression"
    )
    events.register(
        "before-parameter-build.dynamodb", injector.inject_attribute_value_input, unique_id="dynamodb-attr-value-input"
    )
    events.register(
        "after-call.dynamodb", injector.inject_attribute_value_output, unique_id="dynamodb-attr-value-output"
    )


def _condition_expressions(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
    """boto3's own handler, on an injector of this request's: its condition builder numbers the placeholders
    from a reset to the end of one request, so one builder shared by threads could mix two requests' numbers.
    (The value conversions keep no state between calls: one injector serves every thread for them.)"""
    TransformationInjector().inject_condition_expressions(params, model, **kwargs)


def forget_resources() -> None:
    """Make the next call build new clients (after the environment changed)."""
    global _generation
    _generation += 1


class Table:
    """What the stores use of boto3's Table resource: its item and query calls, on the client with TableName
    filled in (as the resource's actions fill it in; an explicit TableName wins, as there)."""

    def __init__(self, dynamodb: Any, name: str) -> None:
        self._client = dynamodb
        self.name = name

    def get_item(self, **request: Any) -> Any:
        return self._client.get_item(**{"TableName": self.name, **request})

    def put_item(self, **request: Any) -> Any:
        return self._client.put_item(**{"TableName": self.name, **request})

    def update_item(self, **request: Any) -> Any:
        return self._client.update_item(**{"TableName": self.name, **request})

    def delete_item(self, **request: Any) -> Any:
        return self._client.delete_item(**{"TableName": self.name, **request})

    def query(self, **request: Any) -> Any:
        return self._client.query(**{"TableName": self.name, **request})


def table(name: str) -> Table:
    """The Table for `name`, made once."""
    clients = _current()
    found = clients.tables.get(name)
    if found is None:
        found = clients.tables.setdefault(name, Table(clients.converting, name))
    return found


def wire_client() -> Any:
    """The client without boto3's conversions: values in DynamoDB's JSON ({"S": ...}) both ways.

    For reads of many small items where converting each costs more than the request (a broadcast's
    1,000 connection rows).
    """
    clients = _current()
    if clients.wire is None:
        with _clients_lock:
            if clients.wire is None:
                clients.wire = boto3.client("dynamodb", config=_CLIENT_CONFIG)
    return clients.wire


def batch_get(table_name: str, keys: Sequence[dict[str, Any]], *, consistent: bool = False) -> Iterator[dict[str, Any]]:
    """The items stored under `keys` (at most 100), in any order; keys DynamoDB left unprocessed are asked again."""
    request: dict[str, Any] = {table_name: {"Keys": list(keys), "ConsistentRead": consistent}}
    while request:
        with translated_errors():
            answer = client().batch_get_item(RequestItems=request)
        yield from answer.get("Responses", {}).get(table_name, [])
        request = answer.get("UnprocessedKeys") or {}


def to_dynamo(value: Any) -> Any:
    """Python values as DynamoDB takes them: floats become Decimals, None attributes are dropped."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: to_dynamo(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(item) for item in value]
    return value


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: from_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_dynamo(item) for item in value]
    return value


_deserializer = TypeDeserializer()


def from_stream_image(image: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB-JSON image (as streams deliver it) as plain Python values."""
    values: dict[str, Any] = from_dynamo({key: _deserializer.deserialize(value) for key, value in image.items()})
    return values


class ConcurrentUpdate(Exception):
    """Another writer got there first: a write's condition failed, or its transaction collided with another.

    Read again and retry, or take the other writer's result as the answer.
    """


@contextmanager
def translated_errors() -> Iterator[None]:
    """Any DynamoDB failure inside the block raised as the domain's StoreUnavailable."""
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise StoreUnavailable(f"the job store did not answer: {type(exc).__name__}") from exc


@contextmanager
def conditional_write() -> Iterator[None]:
    """Like `translated_errors`, except that a write that lost a race raises ConcurrentUpdate."""
    with translated_errors():
        try:
            yield
        except ClientError as exc:
            if lost_race(exc):
                raise ConcurrentUpdate() from exc
            raise


# Why DynamoDB cancels a transaction item when another writer got there first.
_LOST_RACE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


def lost_race(exc: ClientError) -> bool:
    """True when `exc` says a condition failed or the transaction collided; any other error is a failure."""
    error = exc.response.get("Error", {}).get("Code", "")
    if error == "ConditionalCheckFailedException":
        return True
    reasons = {reason.get("Code", "") for reason in exc.response.get("CancellationReasons", [])}
    return error == "TransactionCanceledException" and bool(reasons & _LOST_RACE_REASONS)
