"""A stateful fake of Replicate's HTTP API for handler tests, served through respx.

Unlike the local stack's simulator it has no clock: a test sets exactly the
jobs, pages and failures it needs, and counts the requests that arrive.

Its list pages hold 10 jobs where Replicate's hold 100: every walk over pages
(several pages, a cap between pages, a page of jobs already stored) is proven
with a tenth of the jobs, and moto stores a tenth as many.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

BASE_URL = "https://replicate.test/v1"
_ids = itertools.count(1)


# What a job was started with; a token in it must never reach a client (tests check that it does not).
_INPUT = {"input_images": "https://example.test/data.zip", "hf_token": "hf_secret_should_never_leak"}


def replicate_job(
    status: str = "processing",
    *,
    job_id: str | None = None,
    created_at: str = "2026-11-01T10:00:00.000000Z",
    model: str = "acme/flux-lora-trainer",
    logs: str | None = None,
    predict_time: float | None = None,
    started_at: str | None = None,
    completed_at: str | None = None,
    error: str | None = None,
    output: Any = None,
    job_input: dict[str, Any] | None = None,
    collection: str = "predictions",
    base_url: str = BASE_URL,
) -> dict[str, Any]:
    """A Replicate prediction/training object as the API returns it (the bench's fake provider's too)."""
    job_id = job_id or f"job{next(_ids):05d}"
    return {
        "id": job_id,
        "model": model,
        "version": "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
        "status": status,
        "input": dict(_INPUT if job_input is None else job_input),
        "output": output,
        "logs": logs,
        "error": error,
        "created_at": created_at,
        "started_at": started_at,
        "completed_at": completed_at,
        "metrics": {"predict_time": predict_time} if predict_time is not None else {},
        "urls": {"get": f"{base_url}/{collection}/{job_id}", "cancel": f"{base_url}/{collection}/{job_id}/cancel"},
        "source": "api",
    }


@dataclass
class FakeReplicate:
    predictions: list[dict[str, Any]] = field(default_factory=list)
    trainings: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 10  # Replicate's are 100: see the module's docstring
    username: str = "acme"
    secret: str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    token: str = "r8_test_token"
    # (method, path) -> list of status codes to answer before behaving normally
    failures: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    requests: Counter = field(default_factory=Counter)

    # ---- test controls ------------------------------------------------------

    def add(self, job: dict[str, Any], kind: str = "prediction") -> dict[str, Any]:
        (self.trainings if kind == "training" else self.predictions).append(job)
        return job

    def update(self, job_id: str, **fields: Any) -> None:
        for job in self.predictions + self.trainings:
            if job["id"] == job_id:
                job.update(fields)

    def fail_next(self, method: str, path: str, *statuses: int) -> None:
        self.failures.setdefault((method, path), []).extend(statuses)

    def count(self, method: str = "GET", prefix: str = "") -> int:
        return sum(n for (m, p), n in self.requests.items() if m == method and p.startswith(prefix))

    # ---- HTTP ---------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        self.requests[(request.method, path)] += 1
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _problem(401, "You did not pass a valid authentication token")
        pending = self.failures.get((request.method, path))
        if pending:
            return _failure(pending.pop(0))
        return self._route(request, path)

    def _route(self, request: httpx.Request, path: str) -> httpx.Response:
        if path == "/account":
            return httpx.Response(200, json={"type": "user", "username": self.username, "name": "Acme"})
        if path == "/webhooks/default/secret":
            return httpx.Response(200, json={"key": self.secret})
        collection, _, job_id = path.strip("/").partition("/")
        jobs = {"predictions": self._newest_first(self.predictions), "trainings": self._newest_first(self.trainings)}
        if collection not in jobs:
            return _problem(404, "Not found.")
        if not job_id:
            return self._page(request, collection, jobs[collection])
        job_id, _, action = job_id.partition("/")
        everything = jobs[collection] + (jobs["trainings"] if collection == "predictions" else [])
        for job in everything:
            if job["id"] == job_id and not action and request.method == "GET":
                return httpx.Response(200, json=job)
            if job["id"] == job_id and action == "cancel" and request.method == "POST":
                return httpx.Response(200, json=self._cancel(job))
        return _problem(404, "Not found.")

    @staticmethod
    def _cancel(job: dict[str, Any]) -> dict[str, Any]:
        # Replicate ends a job that has not ended as `canceled` and answers with it; an ended one is left as it is.
        if job["status"] in ("starting", "processing"):
            job.update(status="canceled", completed_at="2026-11-01T11:00:00.000000Z")
        return job

    @staticmethod
    def _newest_first(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(jobs, key=lambda job: job["created_at"], reverse=True)

    def _page(self, request: httpx.Request, collection: str, jobs: list[dict[str, Any]]) -> httpx.Response:
        start = int(request.url.params.get("cursor", "0"))
        chunk = jobs[start : start + self.page_size]
        more = start + self.page_size < len(jobs)
        results = [{key: value for key, value in job.items() if key != "logs"} for job in chunk]
        next_url = f"{BASE_URL}/{collection}?cursor={start + self.page_size}" if more else None
        return httpx.Response(200, json={"next": next_url, "previous": None, "results": results})


def _problem(status: int, detail: str) -> httpx.Response:
    body = json.dumps({"title": "Error", "detail": detail, "status": status})
    return httpx.Response(status, content=body, headers={"content-type": "application/problem+json"})


def _failure(status: int) -> httpx.Response:
    if status == 429:
        return httpx.Response(429, json={"detail": "Request was throttled. Your rate limit resets in ~0s."})
    return _problem(status, "Internal server error")
