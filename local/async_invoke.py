"""Lambda's Invoke API for the local stack: what `jobsync.background.hand_off` talks to.

The functions call boto3's `lambda.invoke(InvocationType="Event")` as they do
in AWS; the stack points `AWS_ENDPOINT_URL_LAMBDA` at this server. Like
Lambda, an asynchronous invoke is answered 202 at once and runs later, at most
the function's ReservedConcurrentExecutions at a time, is retried
MaximumRetryAttempts times (EventInvokeConfig; Lambda's default is 2) after a
failure, and then lands as a dead letter: a line in `<state>/dead-letters.jsonl`
and a warning in the stack's log. `RequestResponse` runs the function and
answers its result.

Queued invocations live in memory: a crash loses them, as it would lose a
request in flight. That is safe because a hand-off is only a nudge; the work
it asks for is recorded in DynamoDB and the poller's tick hands it off again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local import lambda_runtime

log = logging.getLogger("local.async_invoke")

# Lambda waits about a minute, then two, between attempts; the stack is in a hurry.
LOCAL_RETRY_DELAYS = (1.0, 2.0)
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class InvokableFunction:
    name: str  # the deployed FunctionName, as callers know it
    code_uri: str
    handler: str
    timeout: float
    concurrency: int = DEFAULT_CONCURRENCY
    retries: int = 2


Runner = Callable[[InvokableFunction, dict[str, Any]], Any]


def _run_in_process(function: InvokableFunction, event: dict[str, Any]) -> Any:
    return lambda_runtime.invoke(function.code_uri, function.handler, event, timeout=function.timeout)


class AsyncInvoker:
    """Runs invocations on one bounded pool per function, with Lambda's retries and dead letters."""

    def __init__(
        self,
        functions: Sequence[InvokableFunction],
        dead_letters: Path,
        *,
        run: Runner = _run_in_process,
        retry_delays: Sequence[float] = LOCAL_RETRY_DELAYS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.functions = {function.name: function for function in functions}
        self._pools = {
            function.name: ThreadPoolExecutor(function.concurrency, thread_name_prefix=f"invoke-{function.name}")
            for function in functions
        }
        self._dead_letters = dead_letters
        self._run = run
        self._retry_delays = tuple(retry_delays)
        self._sleep = sleep
        self._lock = threading.Lock()

    def submit(self, name: str, event: dict[str, Any]) -> None:
        """Queue one asynchronous invocation of `name` (KeyError when there is no such function)."""
        function = self.functions[name]
        self._pools[name].submit(self._attempts, function, event)

    def call(self, name: str, event: dict[str, Any]) -> Any:
        """Run `name` now and answer its result, as a RequestResponse invoke does."""
        return self._run(self.functions[name], event)

    def _attempts(self, function: InvokableFunction, event: dict[str, Any]) -> None:
        for attempt in range(function.retries + 1):
            try:
                self._run(function, event)
                return
            except Exception as problem:  # noqa: BLE001 - Lambda retries whatever the function raised
                error = f"{type(problem).__name__}: {problem}"
                log.warning("%s failed (attempt %d of %d): %s", function.name, attempt + 1, function.retries + 1, error)
            if attempt < function.retries:
                self._sleep(self._retry_delays[min(attempt, len(self._retry_delays) - 1)])
        self._dead_letter(function, event, error)

    def _dead_letter(self, function: InvokableFunction, event: dict[str, Any], error: str) -> None:
        letter = {
            "at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "function": function.name,
            "error": error,
            "event": event,
        }
        with self._lock, self._dead_letters.open("a", encoding="utf-8") as letters:
            letters.write(json.dumps(letter, separators=(",", ":")) + "\n")
        log.warning(
            "%s gave up after %d attempts: dead letter in %s", function.name, function.retries + 1, self._dead_letters
        )

    def close(self, wait: bool = False) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=wait, cancel_futures=not wait)


def create_app(invoker: AsyncInvoker) -> Starlette:
    """Lambda's `POST /2015-03-31/functions/{name}/invocations`, for the functions `invoker` knows."""

    async def invoke(request: Request) -> Response:
        name = request.path_params["name"].rsplit(":function:", 1)[-1]  # a name or an ARN
        if name not in invoker.functions:
            return JSONResponse(
                {"Type": "User", "message": f"Function not found: {name}"},
                status_code=404,
                headers={"x-amzn-ErrorType": "ResourceNotFoundException"},
            )
        try:
            event = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return JSONResponse(
                {"Type": "User", "message": "Could not parse request body into json"},
                status_code=400,
                headers={"x-amzn-ErrorType": "InvalidRequestContentException"},
            )
        if request.headers.get("x-amz-invocation-type", "RequestResponse") == "Event":
            invoker.submit(name, event)
            return Response(status_code=202)
        result = await _in_thread(invoker.call, name, event)
        return JSONResponse(result, status_code=200)

    return Starlette(routes=[Route("/2015-03-31/functions/{name}/invocations", invoke, methods=["POST"])])


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(function, *args)


def invokable_functions(template: Mapping[str, Any]) -> list[InvokableFunction]:
    """The functions of template.yaml that have an explicit FunctionName: the ones other code invokes."""
    from local.template import functions, resolve

    found = []
    for spec in functions(template).values():
        if spec.function_name is None:
            continue
        found.append(
            InvokableFunction(
                name=str(resolve(spec.function_name, template)),
                code_uri=spec.code_uri,
                handler=spec.handler,
                timeout=float(spec.timeout),
                concurrency=int(resolve(spec.reserved_concurrency, template) or DEFAULT_CONCURRENCY),
                retries=spec.async_retries,
            )
        )
    return found
