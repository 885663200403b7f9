"""An in-test fake of jobsync's HTTP API for the static dashboard (web/) in Chromium, and its helpers.

Every `/api/**` request of the page is answered by `FakeApi` through Playwright's request interception;
the page itself is served by a throwaway http.server (tests/browser/conftest.py's `web_base`). The
dashboard's tests (test_dashboard_static.py) and the job page's (test_job_page_static.py) share it.
"""

from __future__ import annotations

import http.server
import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = ROOT / "web"
ARTIFACTS = ROOT / "artifacts"
TOKEN = "abc"
RUNNING_ID = "r7bq3xkzv5rmc0cj8vrtrunning01"
RUNNING_MODEL = "stability/sdxl-dreambooth-with-a-rather-long-model-name-to-wrap"
# The page's default timers (web/app.js).
POLL_MS = 5_000  # inline progress
REFRESH_MS = 30_000  # fallback refresh while the WebSocket is not open
HEALTH_MS = 30_000  # polling status, and the provider's credentials while they are in trouble
TOAST_MS = 6_000
NOW = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)
VALID = {"valid": True, "username": "acme", "error": None}
REFUSED = {"valid": False, "username": None, "error": "You did not pass a valid authentication token"}


# --------------------------------------------------------------------------- fake API


def fake_job(job_id: str, status: str, created_at: str, **extra) -> dict:
    active = status in {"pending", "uploading", "queued", "running"}
    job = {
        "job_id": job_id,
        "provider": "replicate",
        "status": status,
        "model": "acme/flux-lora-trainer",
        "model_version": "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
        "config_name": None,
        "created_at": created_at,
        "started_at": None,
        "completed_at": None,
        "cost_usd": None,
        "hardware_type": "gpu-h100",
        "error_message": None,
        "output_url": None,
        "is_active": active,
        "is_terminal": not active,
        "duration_seconds": None,
        "price_per_second_usd": 0.001525,
    }
    job.update(extra)
    return job


def _initial_jobs() -> list[dict]:
    # Deliberately not in date order: the fake sorts like the real API does.
    return [
        fake_job(
            "cmp00000000000000000000001",
            "completed",
            "2025-03-01T08:00:00Z",
            duration_seconds=3725,
            cost_usd=5.680625,
            output_url="https://example.invalid/weights.tar",
        ),
        fake_job(
            RUNNING_ID,
            "running",
            "2025-03-03T10:15:00.123456Z",
            model=RUNNING_MODEL,
            duration_seconds=None,
        ),
        fake_job(
            "fal00000000000000000000001",
            "failed",
            "2025-03-02T16:30:00Z",
            duration_seconds=42.4,
            cost_usd=0.0647,
            error_message="CUDA out of memory. Tried to allocate 2.50 GiB "
            "(GPU 0; 79.15 GiB total capacity; 76.30 GiB already allocated)",
        ),
        fake_job("que00000000000000000000001", "queued", "2025-03-03T09:00:00Z"),
        fake_job("pen00000000000000000000001", "pending", "2025-03-03T11:00:00Z", model=None),
        fake_job("upl00000000000000000000001", "uploading", "2025-03-03T10:45:00Z"),
        fake_job(
            "can00000000000000000000001", "cancelled", "2025-02-27T12:00:00Z", duration_seconds=125, cost_usd=0.1906
        ),
        fake_job(
            "cmp00000000000000000000002", "completed", "2025-02-20T07:59:00Z", duration_seconds=600, cost_usd=0.915
        ),
    ]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    content_type: str | None = None


class FakeApi:
    """Just enough of CONTRACT.md's HTTP API for the dashboard."""

    def __init__(self, ws_url: str) -> None:
        self.token = TOKEN
        self.ws_url = ws_url
        self.jobs = _initial_jobs()
        self.page_size: int | None = None  # force small pages to exercise "Load more"
        self.requests: list[Seen] = []
        self.progress_calls: dict[str, int] = {}
        self.hold_sync = False
        self.held_sync: list = []
        self.polling_preference: bool | None = None  # server-side; None = automatic
        self.polling_puts: list[tuple[str | None, str | None]] = []  # (raw body, content-type)
        self.fail_polling_setting = False
        self.hold_polling = False
        self.held_polling: list = []
        self.last_tick: dict = {"at": "2025-03-03T10:00:00Z", "error": None}  # the server's poller
        self.validate: dict = VALID
        self.sync_answer: tuple[int, dict] | None = None  # (status, body) instead of the default sync
        self.progress_failure: tuple[int, dict] | None = None  # (status, body) for every inline-progress
        self.hold_lists = False  # list requests wait for release_list()
        self.held_lists: list = []
        self.failing_lists = 0  # how many list requests to answer 503 next
        self.histories: dict[str, list[dict]] = {}  # job_id -> history; derived from its timestamps when absent
        self.logs: dict[str, list[str]] = {}  # job_id -> every log line the provider has
        self.cancel_answer: tuple[int, dict] | None = None  # (status, body) instead of cancelling
        self.cancels: list[str] = []

    # -- helpers for the tests
    def count(self, path: str, method: str = "GET") -> int:
        return sum(1 for r in self.requests if r.path == path and r.method == method)

    def release_sync(self) -> None:
        for route in self.held_sync:
            self._fulfill(route, 200, self._do_sync())
        self.held_sync.clear()

    def release_list(self) -> None:
        """Answers the oldest held list request, with the jobs as they are now."""
        route, query = self.held_lists.pop(0)
        self._fulfill(route, 200, self._list(query))

    def release_polling(self) -> None:
        for route, body in self.held_polling:
            self._polling_setting(route, body)
        self.held_polling.clear()

    # -- interception
    @staticmethod
    def _fulfill(route, status: int, body: dict) -> None:
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    def handle(self, route, request) -> None:
        parts = urlsplit(request.url)
        if parts.path == "/api/settle":  # see settle(): not part of the API, not counted
            return route.fulfill(status=204)
        query = parse_qs(parts.query)
        auth = request.headers.get("authorization")
        self.requests.append(Seen(request.method, parts.path, query, auth, request.headers.get("content-type")))
        if auth != f"Bearer {self.token}":
            return self._fulfill(route, 401, {"error": "unauthorized", "message": "Missing or invalid bearer token"})

        path, method = parts.path, request.method
        if path == "/api/cloud/jobs" and method == "GET":
            if self.failing_lists:
                self.failing_lists -= 1
                return self._fulfill(
                    route, 503, {"error": "store_unavailable", "message": "the job store did not answer"}
                )
            if self.hold_lists:
                self.held_lists.append((route, query))
                return None
            return self._fulfill(route, 200, self._list(query))
        if path == "/api/cloud/jobs/sync" and method == "POST":
            if self.sync_answer is not None:
                return self._fulfill(route, *self.sync_answer)
            if self.hold_sync:
                self.held_sync.append(route)  # answered by release_sync(), so the spinner is observable
                return None
            return self._fulfill(route, 200, self._do_sync())
        if path == "/api/cloud/metrics" and method == "GET":
            return self._fulfill(route, 200, self._metrics())
        if path == "/api/cloud/config" and method == "GET":
            return self._fulfill(
                route,
                200,
                {
                    "websocket_url": self.ws_url,
                    "polling": {"enabled": True, "interval_seconds": 30},
                    "webhooks": {"configured": False},
                },
            )
        if path == "/api/cloud/replicate/validate" and method == "GET":
            return self._fulfill(route, 200, self.validate)
        if path == "/api/cloud/polling/status" and method == "GET":
            return self._fulfill(route, 200, self._polling_status())
        if path == "/api/cloud/polling/setting" and method == "PUT":
            body = request.post_data
            self.polling_puts.append((body, request.headers.get("content-type")))
            if self.hold_polling:
                self.held_polling.append((route, body))  # answered by release_polling()
                return None
            return self._polling_setting(route, body)
        if path.startswith("/api/cloud/jobs/") and path.endswith("/inline-progress") and method == "GET":
            job_id = path[len("/api/cloud/jobs/") : -len("/inline-progress")]
            return self._inline_progress(route, job_id)
        job_path = re.fullmatch(r"/api/cloud/jobs/([^/]+)(/logs|/cancel)?", path)
        if job_path and job_path.group(1) != "sync":
            return self._job_route(route, method, job_path.group(1), job_path.group(2) or "", query)
        return self._fulfill(route, 404, {"error": "not_found", "message": f"No route {method} {path}"})

    def history(self, job: dict) -> list[dict]:
        if job["job_id"] in self.histories:
            return self.histories[job["job_id"]]
        steps = [{"status": "queued", "at": job["created_at"]}]
        if job["started_at"]:
            steps.append({"status": "running", "at": job["started_at"]})
        if job["is_terminal"]:
            steps.append({"status": job["status"], "at": job["completed_at"] or job["created_at"]})
        return steps

    def _job_route(self, route, method: str, job_id: str, what: str, query: dict[str, list[str]]) -> None:
        job = next((j for j in self.jobs if j["job_id"] == job_id), None)
        if job is None:
            return self._fulfill(route, 404, {"error": "not_found", "message": f"No job {job_id}"})
        if what == "" and method == "GET":
            return self._fulfill(route, 200, {"job": {**job, "history": self.history(job)}})
        if what == "/logs" and method == "GET":
            tail = int(query.get("tail", ["200"])[0])
            lines = self.logs.get(job_id, [])
            body = {"job_id": job_id, "lines": lines[-tail:], "truncated": len(lines) > tail, "source": "provider"}
            return self._fulfill(route, 200, body)
        if what == "/cancel" and method == "POST":
            self.cancels.append(job_id)
            if self.cancel_answer is not None:
                return self._fulfill(route, *self.cancel_answer)
            if job["is_terminal"]:
                return self._fulfill(route, 409, {"error": "job_already_ended", "message": "The job has ended"})
            self.histories[job_id] = [*self.history(job), {"status": "cancelled", "at": "2025-03-03T12:00:01Z"}]
            job.update(status="cancelled", is_active=False, is_terminal=True, completed_at="2025-03-03T12:00:01Z")
            return self._fulfill(route, 200, {"job": {**job, "history": self.history(job)}})
        return self._fulfill(route, 405, {"error": "method_not_allowed", "message": f"{method} {job_id}{what}"})

    def _sorted(self) -> list[dict]:
        return sorted(self.jobs, key=lambda j: j["created_at"], reverse=True)

    def _list(self, query: dict[str, list[str]]) -> dict:
        limit = int(query.get("limit", ["50"])[0])
        if self.page_size:
            limit = min(limit, self.page_size)
        start = int(query.get("cursor", ["0"])[0])
        jobs = self._sorted()
        page = jobs[start : start + limit]
        more = start + limit < len(jobs)
        return {"jobs": page, "next_cursor": str(start + limit) if more else None}

    def _metrics(self) -> dict:
        by_status: dict[str, int] = {}
        for job in self.jobs:
            by_status[job["status"]] = by_status.get(job["status"], 0) + 1
        return {
            "job_count": len(self.jobs),
            "active_count": sum(1 for j in self.jobs if j["is_active"]),
            "jobs_by_status": by_status,
            "total_cost_usd": round(sum(j["cost_usd"] or 0 for j in self.jobs), 6),
        }

    def _do_sync(self) -> dict:
        for i in range(3):
            self.jobs.append(
                fake_job(
                    f"syn0000000000000000000000{i}",
                    "completed",
                    f"2025-01-0{i + 1}T00:00:00Z",
                    duration_seconds=60,
                    cost_usd=0.0915,
                )
            )
        return {"synced": 3, "updated": 1, "message": "Discovered 3 new jobs from Replicate"}

    def _polling_status(self) -> dict:
        pref = self.polling_preference
        return {"is_active": pref if pref is not None else True, "preference": pref, "last_tick": self.last_tick}

    def _polling_setting(self, route, raw: str | None) -> None:
        if self.fail_polling_setting:
            return self._fulfill(route, 500, {"error": "internal", "message": "Settings table unavailable"})
        try:
            body = json.loads(raw or "")
        except ValueError:
            body = None
        enabled = body.get("enabled", "missing") if isinstance(body, dict) else "missing"
        if not (enabled is None or isinstance(enabled, bool)):
            return self._fulfill(route, 400, {"error": "bad_request", "message": "enabled must be true, false or null"})
        self.polling_preference = enabled
        return self._fulfill(route, 200, self._polling_status())

    def _inline_progress(self, route, job_id: str) -> None:
        job = next((j for j in self.jobs if j["job_id"] == job_id), None)
        if job is None:
            return self._fulfill(route, 404, {"error": "not_found", "message": "Unknown job"})
        calls = self.progress_calls[job_id] = self.progress_calls.get(job_id, 0) + 1
        if self.progress_failure is not None:
            return self._fulfill(route, *self.progress_failure)
        if job["status"] != "running":
            return self._fulfill(route, 200, {"job_id": job_id, "stage": None, "last_log": None, "progress": None})
        step = min(1000, 100 + 70 * calls)
        return self._fulfill(
            route,
            200,
            {
                "job_id": job_id,
                "stage": "Training",
                "last_log": f"step {step}/1000 - loss: 0.0234 <b>not markup</b>",
                "progress": step / 10,
                "eta_seconds": (1000 - step) * 2,
            },
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


def wait_until(page, predicate: Callable[[], bool], timeout: float = 15.0, message: str = "") -> None:
    """Wait for a condition on the Python side while letting Playwright deliver route events."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met in time")
        page.wait_for_timeout(50)


def pause_clock(page) -> None:
    """Before `goto`: the page's timers fire only when the test runs the clock (`page.clock.run_for`)."""
    # The installed clock runs in real time until paused, and pause_at may not go back: installed an hour
    # early, it is still before the pause however long a loaded machine takes between the two calls.
    page.clock.install(time=NOW - timedelta(hours=1))
    page.clock.pause_at(NOW + timedelta(seconds=1))


def settle(page) -> None:
    """Returns once every request the page has sent so far has reached the fake.

    The fake sees requests in the order the page sends them: a request sent now and answered means
    that the ones before it were handled too.
    """
    page.evaluate("fetch('/api/settle', {cache: 'no-store'}).then(r => r.status)")


def row_ids(page) -> list[str]:
    return page.locator('[data-testid="job-row"]').evaluate_all("rows => rows.map(r => r.dataset.jobId)")


def progress_value(page) -> float:
    bar = page.locator(f'[data-testid="job-row"][data-job-id="{RUNNING_ID}"] [data-testid="job-progress"]')
    return float(bar.get_attribute("aria-valuenow") or "nan")
