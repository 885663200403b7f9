"""A webhook relay between the soak's simulator and the stack: duplicates, shuffles and forges deliveries.

The simulator posts each webhook to the relay, which answers 202 at once and delivers it to the stack on
its own: after a random delay (so later webhooks overtake earlier ones), a share of them twice at the same
moment, and a share of them also as a copy signed wrongly (a tampered body or another secret), which the
stack must refuse with 401. A genuine delivery the stack cannot take (it is down, or answers 5xx) is sent
again, later and later, until it is taken, as Replicate retries; a forged one until it gets an answer.
Every attempt is recorded with its time and answer.
"""

from __future__ import annotations

import asyncio
import base64
import random
import threading
import time
from dataclasses import dataclass, field

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobsync.domain.webhook_signature import sign_webhook
from tests.stack_process import free_port

# Between the attempts of one delivery, as Replicate spaces its retries (jittered here), then every 8 s.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
OTHER_SECRET = "whsec_" + base64.b64encode(b"not-the-secret-the-stack-knows!!").decode()


@dataclass
class Attempt:
    webhook_id: str
    forged: bool
    started: float  # time.time()
    status: int | None  # None: no answer (connection refused or reset)


@dataclass
class RelayCounts:
    received: int = 0
    duplicated: int = 0
    forged: int = 0
    attempts: list[Attempt] = field(default_factory=list)


class WebhookRelay:
    def __init__(
        self,
        target_url: str,
        *,
        seed: int = 11,
        duplicate_share: float = 0.5,
        forged_share: float = 0.1,
        max_delay: float = 2.0,
        at_once: int = 12,
        give_up_after: float = 240.0,
    ) -> None:
        self.target_url = target_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/relay"
        self.counts = RelayCounts()
        self._rng = random.Random(seed)
        self._duplicate_share = duplicate_share
        self._forged_share = forged_share
        self._max_delay = max_delay
        self._give_up_after = give_up_after
        self._at_once = at_once
        self._lock = threading.Lock()
        self._pending = 0
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        app = Starlette(routes=[Route("/relay", self._receive, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self._thread = threading.Thread(target=self._server.run, name="webhook-relay", daemon=True)

    def start(self) -> WebhookRelay:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the webhook relay did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    @property
    def pending(self) -> int:
        """Deliveries scheduled and not yet taken (or answered, for forged ones)."""
        with self._lock:
            return self._pending

    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self.counts.attempts)

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {name: value for name, value in request.headers.items() if name.startswith("webhook-")}
        headers["content-type"] = request.headers.get("content-type", "application/json")
        if self._client is None:
            # At most `at_once` deliveries in flight, as a sender's pool of connections holds them: a stack that
            # comes back finds a queue of retries, not hundreds of requests at the same moment. The queue is a
            # semaphore's, not the connection pool's: httpcore's pool walks every queued request each time a
            # connection frees, which with hundreds queued cost the relay 11 ms of CPU a delivery instead of 3
            # (CPU the stack under test needs on a loaded machine).
            self._slots = asyncio.Semaphore(self._at_once)
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(60.0, pool=None), limits=httpx.Limits(max_connections=self._at_once)
            )
        with self._lock:
            copies = 2 if self._rng.random() < self._duplicate_share else 1
            forged = self._rng.random() < self._forged_share
            self.counts.received += 1
            self.counts.duplicated += copies - 1
            self.counts.forged += forged
            delay = self._rng.uniform(0, self._max_delay)
            tamper_body = self._rng.random() < 0.5
            self._pending += copies + forged
        for _ in range(copies):  # duplicates leave together: they meet in the stack at the same moment
            asyncio.create_task(self._deliver(headers, body, delay, forged=False))
        if forged:
            if tamper_body:  # the signature of the real body over a body that says something else
                fake_headers, fake_body = headers, body.replace(b'"status":"', b'"status":"x', 1) + b" "
            else:  # a well-formed signature made with another secret
                stamp = headers.get("webhook-timestamp", str(int(time.time())))
                fake_headers = {
                    **headers,
                    "webhook-signature": sign_webhook(OTHER_SECRET, headers["webhook-id"], stamp, body),
                }
                fake_body = body
            asyncio.create_task(
                self._deliver(fake_headers, fake_body, self._rng.uniform(0, self._max_delay), forged=True)
            )
        return Response(status_code=202)

    async def _deliver(self, headers: dict[str, str], body: bytes, delay: float, *, forged: bool) -> None:
        await asyncio.sleep(delay)
        deadline = time.monotonic() + self._give_up_after
        delays = iter(RETRY_DELAYS)
        assert self._client is not None and self._slots is not None
        try:
            while True:
                started = time.time()
                try:
                    async with self._slots:
                        answer = await self._client.post(self.target_url, content=body, headers=headers)
                    status: int | None = answer.status_code
                except httpx.HTTPError:
                    status = None
                with self._lock:
                    self.counts.attempts.append(Attempt(headers.get("webhook-id", ""), forged, started, status))
                taken = status is not None and (forged or status < 500)
                if taken or time.monotonic() > deadline:
                    return
                await asyncio.sleep(next(delays, RETRY_DELAYS[-1]) * self._rng.uniform(0.5, 1.0))
        finally:
            with self._lock:
                self._pending -= 1
