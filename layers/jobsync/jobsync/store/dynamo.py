"""boto3 DynamoDB access shared by the stores: one resource and one Table object per table per thread, made lazily."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from jobsync.domain.errors import StoreUnavailable

# Fail fast inside a Lambda instead of letting botocore retry for a minute.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)


_local = threading.local()
_generation = 0


def resource() -> Any:
    """This thread's DynamoDB resource (boto3 resources must not be shared between threads).

    The endpoint comes from AWS_ENDPOINT_URL_DYNAMODB when set (the local stack's moto server).
    """
    if getattr(_local, "generation", None) != _generation:
        _local.resource = boto3.resource("dynamodb", config=_CLIENT_CONFIG)
        _local.tables = {}
        _local.wire_client = None
        _local.generation = _generation
    return _local.resource


def forget_resources() -> None:
    """Make every thread build a new resource (after the environment changed)."""
    global _generation
    _generation += 1


def table(name: str) -> Any:
    """This thread's Table object for `name`, made once: building one costs boto3 a class built from its
    model (a quarter of the CPU of concurrent syncs when it was made on every call)."""
    dynamodb = resource()
    tables: dict[str, Any] = _local.tables
    if name not in tables:
        tables[name] = dynamodb.Table(name)
    return tables[name]


def client() -> Any:
    """The resource's client: it takes and answers plain Python values (boto3 converts them both ways)."""
    return resource().meta.client


def wire_client() -> Any:
    """This thread's client without boto3's conversions: values in DynamoDB's JSON ({"S": ...}) both ways.

    For reads of many small items where converting each costs more than the request (a broadcast's
    1,000 connection rows).
    """
    resource()  # a new generation of resources means a new client too
    if getattr(_local, "wire_client", None) is None:
        _local.wire_client = boto3.client("dynamodb", config=_CLIENT_CONFIG)
    return _local.wire_client


def batch_get(table_name: str, keys: Sequence[dict[str, Any]], *, consistent: bool = False) -> Iterator[dict[str, Any]]:
    """The items stored under `keys` (at most 100), in any order; keys DynamoDB left unprocessed are asked again."""
    request: dict[str, Any] = {table_name: {"Keys": list(keys), "ConsistentRead": consistent}}
    while request:
        with translated_errors():
            answer = resource().batch_get_item(RequestItems=request)
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
