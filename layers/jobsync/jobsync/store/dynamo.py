"""boto3 DynamoDB access shared by the stores: one resource per process, created lazily."""

from __future__ import annotations

import threading
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
        _local.generation = _generation
    return _local.resource


def forget_resources() -> None:
    """Make every thread build a new resource (after the environment changed)."""
    global _generation
    _generation += 1


def table(name: str) -> Any:
    return resource().Table(name)


def client() -> Any:
    return resource().meta.client


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
    return from_dynamo({key: _deserializer.deserialize(value) for key, value in image.items()})


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def cancellation_reasons(exc: ClientError) -> list[str]:
    return [reason.get("Code", "") for reason in exc.response.get("CancellationReasons", [])]


def unavailable(exc: BotoCoreError | ClientError) -> StoreUnavailable:
    return StoreUnavailable(f"the job store did not answer: {type(exc).__name__}")
