"""The simulator over HTTP: Replicate's routes under `/v1`, its problem+json errors, injected faults, auth."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobsync.domain.identifiers import is_job_id
from local.replicate_simulator.listing import BadRequest
from local.replicate_simulator.state import Fault, JobObject, SimulatedReplicate
from local.replicate_simulator.webhooks import webhook_loop

THROTTLE_DETAIL = "Request was throttled. Your rate limit resets in ~1s."
RETRY_AFTER_SECONDS = 1
Sleep = Callable[[float], Awaitable[Any]]


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"title": title, "detail": detail, "status": status}, status_code=status, media_type="application/problem+json"
    )


def _not_found() -> JSONResponse:
    return _problem(404, "Not found", "Not found.")


def _error_answer(status: int, *, retry_after: bool = False) -> JSONResponse:
    # Replicate answers a throttle with a bare `detail`, not a problem document.
    if status == 429:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if retry_after else None
        return JSONResponse({"detail": THROTTLE_DETAIL}, status_code=429, headers=headers)
    titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    return _problem(status, titles.get(status, "Error"), "Something went wrong on our end (injected by the simulator).")


class _Gate:
    """Counts every request, answers the fault it meets, if any, and requires the token."""

    def __init__(self, app: ASGIApp, sim: SimulatedReplicate, sleep: Sleep = asyncio.sleep) -> None:
        self.app = app
        self.sim = sim
        self.sleep = sleep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        fault = self.sim.record_request(request.method, request.url.path, request.url.query)
        if fault is None:
            await self._answer(scope, receive, send)
        elif fault.kind == "timeout":
            await self.sleep(self.sim.fault_plan.timeout_seconds)  # the client has given up by now
            await _error_answer(504)(scope, receive, send)
        elif fault.status is None:
            await self._cut_short(fault, scope, receive, send)
        else:
            await _error_answer(fault.status, retry_after=fault.kind == "429-retry-after")(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.sim.authorized(Request(scope).headers.get("authorization")):
            await self.app(scope, receive, send)
        else:
            await _problem(401, "Unauthenticated", "You did not pass a valid authentication token")(
                scope, receive, send
            )

    async def _cut_short(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        """The real answer, cut in half: `truncated` sends the half as a whole body, `reset` announces
        the whole and stops half-way (the server then closes the connection: a response left
        incomplete is closed, not finished)."""
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self._answer(scope, receive, keep)
        start = next(message for message in answer if message["type"] == "http.response.start")
        body = b"".join(message.get("body", b"") for message in answer if message["type"] == "http.response.body")
        half = body[: len(body) // 2]
        announced = len(half) if fault.kind == "truncated" else len(body)
        headers = [(name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(announced).encode())]})
        await send({"type": "http.response.body", "body": half, "more_body": fault.kind == "reset"})


def _api_base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/v1"


def create_app(
    sim: SimulatedReplicate,
    webhook_url: str | None = None,
    *,
    webhook_interval: float = 1.0,
    webhook_client: httpx.AsyncClient | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Starlette:
    """The simulator under `/v1`; with `webhook_url`, the webhook loop runs for the app's lifetime.

    `sleep` is how a `timeout` fault waits (tests give one that does not).
    """

    async def account(request: Request) -> Response:
        return JSONResponse(sim.account())

    async def webhook_secret(request: Request) -> Response:
        return JSONResponse({"key": sim.webhook_secret})

    def listing(collection: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            params = request.query_params
            try:
                page = sim.list_page(
                    collection,
                    base_url=_api_base(request),
                    cursor=params.get("cursor"),
                    created_after=params.get("created_after") if collection == "predictions" else None,
                    created_before=params.get("created_before") if collection == "predictions" else None,
                )
            except BadRequest as exc:
                return _problem(400, "Bad request", str(exc))
            return JSONResponse(page)

        return endpoint

    def one(kind: str | None, action: Callable[..., JobObject | None]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            job_id = request.path_params["job_id"]
            if not is_job_id(job_id):  # never an id it issued: answered like any unknown one, without a lookup
                return _not_found()
            found = action(job_id, kind, base_url=_api_base(request))
            return _not_found() if found is None else JSONResponse(found)

        return endpoint

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return _not_found()
        return _problem(status, "Method not allowed" if status == 405 else "Error", str(getattr(exc, "detail", "")))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not webhook_url:
            yield
            return
        stop = asyncio.Event()
        task = asyncio.create_task(
            webhook_loop(sim, webhook_url, stop=stop, interval=webhook_interval, client=webhook_client)
        )
        try:
            yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(task, timeout=5.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()

    routes = [
        Route("/v1/account", account, methods=["GET"]),
        Route("/v1/webhooks/default/secret", webhook_secret, methods=["GET"]),
        Route("/v1/predictions", listing("predictions"), methods=["GET"]),
        Route("/v1/trainings", listing("trainings"), methods=["GET"]),
        Route("/v1/predictions/{job_id}", one(None, sim.get), methods=["GET"]),
        Route("/v1/trainings/{job_id}", one("training", sim.get), methods=["GET"]),
        Route("/v1/predictions/{job_id}/cancel", one(None, sim.cancel), methods=["POST"]),
        Route("/v1/trainings/{job_id}/cancel", one("training", sim.cancel), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    app.add_middleware(_Gate, sim=sim, sleep=sleep)
    app.state.simulator = sim
    return app
