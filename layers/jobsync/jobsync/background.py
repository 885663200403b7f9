"""Work handed to another function: Lambda's asynchronous invoke.

An asynchronous invoke returns once Lambda has queued the event (202): Lambda
then runs the function with its own concurrency limit, retries it twice when
it fails, and sends the event to the function's on-failure destination after
that. A request that must answer within API Gateway's 30 s hands the slow part
over this way and answers at once.

A hand-off is a nudge, never the only record of the work: whatever must not be
lost (a pending log tail, an import's cursor) is written to DynamoDB first, and
the poller's tick hands off again anything a lost invocation left behind. So a
failed hand-off is logged and reported to the caller, not raised: the work
waits for the next tick instead of failing the request that asked for it.

The local stack serves Lambda's Invoke API itself (local/async_invoke.py) and
points `AWS_ENDPOINT_URL_LAMBDA` at it, so this same code runs there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jobsync.observability import logger

# Lambda's limit for an asynchronous invocation's payload.
MAX_PAYLOAD_BYTES = 256 * 1024

Invoker = Callable[[str, bytes], None]


@lru_cache(maxsize=1)
def _lambda_client() -> Any:
    import boto3
    from botocore.config import Config

    # An async invoke only queues the event: it answers in milliseconds or not at all.
    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("lambda", config=config)


def _invoke_async(function_name: str, payload: bytes) -> None:
    _lambda_client().invoke(FunctionName=function_name, InvocationType="Event", Payload=payload)


# Replaced by the tests' `handed_off` fixture; everything else uses Lambda.
invoker: Invoker = _invoke_async


def encode(payload: Mapping[str, Any]) -> bytes:
    """The event a hand-off sends; ValueError when Lambda would refuse its size."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a hand-off payload holds at most {MAX_PAYLOAD_BYTES} bytes, not {len(body)}")
    return body


def hand_off(function_name: str, payload: Mapping[str, Any]) -> bool:
    """Ask Lambda to run `function_name` with `payload` later; False (logged) when it could not be queued."""
    body = encode(payload)
    try:
        invoker(function_name, body)
    except Exception as exc:  # noqa: BLE001 - any failure only delays the work until the next tick
        logger.warning("hand-off failed", extra={"function": function_name, "error": type(exc).__name__})
        return False
    return True
