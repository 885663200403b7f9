"""The static dashboard (web/) in a real Chromium, against an in-test fake of the HTTP API.

The page is served by a throwaway http.server; every `/api/**` request is answered by
`FakeApi` through Playwright's request interception, so no jobsync server is needed.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright import sync_api as playwright_sync

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = ROOT / "web"
ARTIFACTS = ROOT / "artifacts"
TOKEN = "abc"
RUNNING_ID = "r7bq3xkzv5rmc0cj8vrtrunning01"


# --------------------------------------------------------------------------- fake API


def _job(job_id: str, status: str, created_at: str, **extra) -> dict:
    active = status in {"pending", "uploading", "queued", "running"}
    job = {
        "job_id": job_id,
        "provider": "replicate",
        "status": status,
        "model": "acme/flux-lora-trainer",
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
    }
    job.update(extra)
    return job


def _initial_jobs() -> list[dict]:
    # Deliberately not in date order: the fake sorts like the real API does.
    return [
        _job(
            "cmp00000000000000000000001",
            "completed",
            "2025-03-01T08:00:00Z",
            duration_seconds=3725,
            cost_usd=5.680625,
            output_url="https://example.invalid/weights.tar",
        ),
        _job(
            RUNNING_ID,
            "running",
            "2025-03-03T10:15:00.123456Z",
            model="stability/sdxl-dreambooth-with-a-rather-long-model-name-to-wrap",
            duration_seconds=None,
        ),
        _job(
            "fal00000000000000000000001",
            "failed",
            "2025-03-02T16:30:00Z",
            duration_seconds=42.4,
            cost_usd=0.0647,
            error_message="CUDA out of memory. Tried to allocate 2.50 GiB "
            "(GPU 0; 79.15 GiB total capacity; 76.30 GiB already allocated)",
        ),
        _job("que00000000000000000000001", "queued", "2025-03-03T09:00:00Z"),
        _job("pen00000000000000000000001", "pending", "2025-03-03T11:00:00Z", model=None),
        _job("upl00000000000000000000001", "uploading", "2025-03-03T10:45:00Z"),
        _job("can00000000000000000000001", "cancelled", "2025-02-27T12:00:00Z", duration_seconds=125, cost_usd=0.1906),
        _job("cmp00000000000000000000002", "completed", "2025-02-20T07:59:00Z", duration_seconds=600, cost_usd=0.915),
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

    # -- helpers for the tests
    def count(self, path: str, method: str = "GET") -> int:
        return sum(1 for r in self.requests if r.path == path and r.method == method)

    def release_sync(self) -> None:
        for route in self.held_sync:
            self._fulfill(route, 200, self._do_sync())
        self.held_sync.clear()

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
        query = parse_qs(parts.query)
        auth = request.headers.get("authorization")
        self.requests.append(Seen(request.method, parts.path, query, auth, request.headers.get("content-type")))
        if auth != f"Bearer {self.token}":
            return self._fulfill(route, 401, {"error": "unauthorized", "message": "Missing or invalid bearer token"})

        path, method = parts.path, request.method
        if path == "/api/cloud/jobs" and method == "GET":
            return self._fulfill(route, 200, self._list(query))
        if path == "/api/cloud/jobs/sync" and method == "POST":
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
        return self._fulfill(route, 404, {"error": "not_found", "message": f"No route {method} {path}"})

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
                _job(
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
        return {"is_active": pref if pref is not None else True, "preference": pref}

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


# --------------------------------------------------------------------------- fixtures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def web_base() -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(WEB_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def fake() -> FakeApi:
    # Nothing listens on this port: the page must show that it is reconnecting.
    return FakeApi(ws_url=f"ws://127.0.0.1:{_free_port()}/ws")


@pytest.fixture()
def make_page(browser, fake) -> Iterator[Callable]:
    contexts = []

    def _make(width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US", timezone_id="UTC")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(5000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors  # type: ignore[attr-defined]
        page.route("**/api/**", fake.handle)
        return page

    yield _make
    for context in contexts:
        context.close()


def wait_until(page, predicate: Callable[[], bool], timeout: float = 5.0, message: str = "") -> None:
    """Wait for a condition on the Python side while letting Playwright deliver route events."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met in time")
        page.wait_for_timeout(50)


def row_ids(page) -> list[str]:
    return page.locator('[data-testid="job-row"]').evaluate_all("rows => rows.map(r => r.dataset.jobId)")


def progress_value(page) -> float:
    bar = page.locator(f'[data-testid="job-row"][data-job-id="{RUNNING_ID}"] [data-testid="job-progress"]')
    return float(bar.get_attribute("aria-valuenow") or "nan")


# --------------------------------------------------------------------------- tests


def test_rows_newest_first_token_from_fragment_and_load_more(make_page, fake, web_base):
    fake.page_size = 5
    page = make_page()
    page.goto(f"{web_base}/?poll_ms=200#token={TOKEN}")

    expect = playwright_sync.expect
    rows = page.locator('[data-testid="job-row"]')
    expect(rows).to_have_count(5)

    # The fragment is consumed: stored, then removed from the address bar.
    assert page.evaluate("location.hash") == ""
    assert "#" not in page.url and "token" not in page.url
    assert page.evaluate("localStorage.getItem('jobsync.apiToken')") == TOKEN

    # Load more follows next_cursor.
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(len(fake.jobs))
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    assert any(r.query.get("cursor") == ["5"] for r in fake.requests if r.path == "/api/cloud/jobs")

    expected = [j["job_id"] for j in sorted(fake.jobs, key=lambda j: j["created_at"], reverse=True)]
    assert row_ids(page) == expected
    statuses = rows.evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert statuses == [next(j["status"] for j in fake.jobs if j["job_id"] == i) for i in expected]
    assert set(statuses) == {"pending", "uploading", "queued", "running", "completed", "failed", "cancelled"}
    for status in statuses:
        badge = page.locator(f'[data-testid="job-row"][data-status="{status}"] [data-testid="job-status"]').first
        assert badge.text_content().strip().lower() == status  # the status is written, not only coloured

    # Formatting of one finished job and the failed job's error.
    done = page.locator('[data-testid="job-row"][data-job-id="cmp00000000000000000000001"]')
    expect(done).to_contain_text("1h 02m 05s")
    expect(done).to_contain_text("$5.6806")
    expect(done.locator("time")).to_have_attribute("datetime", "2025-03-01T08:00:00.000Z")
    expect(done.locator("code")).to_have_attribute("title", "cmp00000000000000000000001")
    failed = page.locator('[data-testid="job-row"][data-status="failed"]')
    expect(failed).to_contain_text("CUDA out of memory")

    # Metrics panel.
    expect(page.get_by_test_id("metrics-total")).to_have_text("8")
    expect(page.get_by_test_id("metrics-active")).to_have_text("4")
    expect(page.get_by_test_id("metrics-cost")).to_have_text("$6.8509")

    # Log lines are text, never markup.
    last_log = page.locator(f'[data-job-id="{RUNNING_ID}"] [data-testid="job-last-log"]')
    expect(last_log).to_contain_text("<b>not markup</b>")

    # The WebSocket address leads nowhere: the indicator says so.
    expect(page.get_by_test_id("connection-state")).to_have_text("Reconnecting")
    ws_config = [r for r in fake.requests if r.path == "/api/cloud/config"]
    assert ws_config, "the page asks the config for the websocket_url"

    assert fake.requests, "the page called the API"
    assert {r.authorization for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert page.js_errors == []


def test_sync_shows_spinner_then_toast_and_reloads(make_page, fake, web_base):
    fake.hold_sync = True
    page = make_page()
    page.goto(f"{web_base}/?poll_ms=200#token={TOKEN}")
    expect = playwright_sync.expect
    rows = page.locator('[data-testid="job-row"]')
    expect(rows).to_have_count(8)
    expect(page.get_by_test_id("metrics-total")).to_have_text("8")

    button = page.get_by_test_id("sync-button")
    spinner = page.get_by_test_id("sync-spinner")
    expect(spinner).to_be_hidden()
    button.click()

    # In flight: disabled, busy, spinner visible.
    expect(spinner).to_be_visible()
    expect(button).to_be_disabled()
    expect(button).to_have_attribute("aria-busy", "true")
    wait_until(page, lambda: fake.held_sync, message="the sync request reached the API")
    lists_before, metrics_before = fake.count("/api/cloud/jobs"), fake.count("/api/cloud/metrics")
    page.wait_for_timeout(300)
    expect(spinner).to_be_visible()  # still in flight while the API has not answered

    fake.release_sync()

    toast = page.get_by_test_id("toast")
    expect(toast).to_have_text("Discovered 3 jobs from Replicate")
    expect(toast).to_have_attribute("role", "status")
    expect(toast).to_have_attribute("aria-live", "polite")
    expect(spinner).to_be_hidden()
    expect(button).to_be_enabled()
    expect(button).to_have_attribute("aria-busy", "false")

    # List and metrics were fetched again after the sync answered.
    expect(rows).to_have_count(11)
    expect(page.get_by_test_id("metrics-total")).to_have_text("11")
    assert fake.count("/api/cloud/jobs") > lists_before
    assert fake.count("/api/cloud/metrics") > metrics_before
    assert fake.count("/api/cloud/jobs/sync", "POST") == 1

    ARTIFACTS.mkdir(exist_ok=True)
    expect(page.locator(f'[data-job-id="{RUNNING_ID}"] [data-testid="job-stage"]')).to_have_text("Training")
    page.wait_for_timeout(300)  # let the toast finish fading in
    page.screenshot(path=str(ARTIFACTS / "dashboard-static.png"), full_page=True)
    assert page.js_errors == []


def test_sync_failure_shows_the_error_message(make_page, fake, web_base):
    page = make_page()

    def failing_sync(route, request):
        fake.requests.append(Seen(request.method, urlsplit(request.url).path, {}, request.headers.get("authorization")))
        route.fulfill(
            status=502,
            content_type="application/json",
            body=json.dumps({"error": "provider_unavailable", "message": "Replicate answered 503"}),
        )

    page.route("**/api/cloud/jobs/sync", failing_sync)  # registered last, so it wins for this path
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    lists_before = fake.count("/api/cloud/jobs")
    page.get_by_test_id("sync-button").click()
    expect(page.get_by_test_id("toast")).to_contain_text("Replicate answered 503")
    wait_until(page, lambda: fake.count("/api/cloud/jobs") > lists_before, message="list reloaded after a failed sync")


def test_running_job_progress_is_polled_and_stops_when_it_ends(make_page, fake, web_base):
    page = make_page()
    page.goto(f"{web_base}/?poll_ms=200#token={TOKEN}")
    expect = playwright_sync.expect
    row = page.locator(f'[data-testid="job-row"][data-job-id="{RUNNING_ID}"]')
    expect(row.get_by_test_id("job-progress")).to_have_attribute("aria-valuenow", re.compile(r"^\d"))
    expect(row.get_by_test_id("job-stage")).to_have_text("Training")

    seen = [progress_value(page)]
    for _ in range(2):
        wait_until(page, lambda: progress_value(page) > seen[-1], message="progress grows across polls")
        seen.append(progress_value(page))
    assert seen == sorted(seen) and len(set(seen)) == 3
    assert row.get_by_test_id("job-progress").evaluate("el => el.value") == pytest.approx(seen[-1], abs=0.1)
    expect(row.get_by_test_id("job-last-log")).to_contain_text("step ")
    expect(row).to_contain_text("ETA ")

    # Only the running job is polled.
    polled = {r.path for r in fake.requests if r.path.endswith("/inline-progress")}
    assert polled == {f"/api/cloud/jobs/{RUNNING_ID}/inline-progress"}

    # The job ends; the next list load stops its polling.
    job = next(j for j in fake.jobs if j["job_id"] == RUNNING_ID)
    job.update(status="completed", is_active=False, is_terminal=True, duration_seconds=900, cost_usd=1.3725)
    page.get_by_test_id("sync-button").click()
    expect(row).to_have_attribute("data-status", "completed")
    expect(row.get_by_test_id("job-progress")).to_have_count(0)
    page.wait_for_timeout(250)  # let an in-flight poll settle
    calls = fake.progress_calls[RUNNING_ID]
    page.wait_for_timeout(1000)  # five polling intervals
    assert fake.progress_calls[RUNNING_ID] == calls
    assert page.js_errors == []


def test_unauthorized_shows_the_token_form_and_saving_retries(make_page, fake, web_base):
    page = make_page()
    page.goto(f"{web_base}/#token=wrong")
    expect = playwright_sync.expect
    form = page.get_by_test_id("token-form")
    expect(form).to_be_visible()
    expect(page.locator("#token-message")).to_contain_text("401")
    expect(page.locator('[data-testid="job-row"]')).to_have_count(0)
    assert {r.authorization for r in fake.requests} == {"Bearer wrong"}

    page.get_by_label("Token", exact=True).fill(TOKEN)
    form.get_by_role("button", name="Save").click()
    expect(form).to_be_hidden()
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    assert fake.requests[-1].authorization == f"Bearer {TOKEN}"
    assert page.evaluate("localStorage.getItem('jobsync.apiToken')") == TOKEN


def test_without_a_token_the_form_is_shown_and_no_request_is_made(make_page, fake, web_base):
    page = make_page()
    page.goto(f"{web_base}/")
    playwright_sync.expect(page.get_by_test_id("token-form")).to_be_visible()
    page.wait_for_timeout(200)
    assert fake.requests == []


def test_background_polling_control(make_page, fake, web_base):
    fake.polling_preference = True
    page = make_page()
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    select = page.get_by_label("Background polling")
    state = page.get_by_test_id("polling-state")
    assert select.get_attribute("data-testid") == "polling-select"

    # The server's preference is shown once read.
    expect(select).to_be_enabled()
    expect(select).to_have_value("on")
    expect(state).to_have_text("Polling is on (forced)")
    assert fake.count("/api/cloud/polling/status") == 1

    # Off: exactly {"enabled": false}, as JSON; the select is disabled while in flight.
    fake.hold_polling = True
    select.select_option(label="Off")
    wait_until(page, lambda: fake.held_polling, message="the PUT reached the API")
    expect(select).to_be_disabled()
    expect(page.locator("#polling")).to_have_attribute("aria-busy", "true")
    fake.hold_polling = False
    fake.release_polling()
    expect(select).to_be_enabled()
    expect(state).to_have_text("Polling is off (forced)")
    expect(state).to_have_attribute("data-state", "off")
    assert len(fake.polling_puts) == 1
    raw, content_type = fake.polling_puts[0]
    assert json.loads(raw) == {"enabled": False}
    assert content_type is not None and content_type.split(";")[0].strip() == "application/json"
    assert fake.polling_preference is False

    # Automatic: {"enabled": null}; the fake then answers is_active = True.
    select.select_option(label="Automatic")
    expect(state).to_have_text("Polling is on (automatic)")
    expect(select).to_have_value("auto")
    assert json.loads(fake.polling_puts[-1][0]) == {"enabled": None}
    assert fake.polling_preference is None

    # A failed PUT: the select goes back, the toast names the reason, the state text stays.
    fake.fail_polling_setting = True
    select.select_option(label="Off")
    expect(page.get_by_test_id("toast")).to_contain_text("Settings table unavailable")
    expect(page.get_by_test_id("toast")).to_have_attribute("data-kind", "error")
    expect(select).to_have_value("auto")
    expect(select).to_be_enabled()
    expect(state).to_have_text("Polling is on (automatic)")
    assert json.loads(fake.polling_puts[-1][0]) == {"enabled": False}
    assert len(fake.polling_puts) == 3
    assert fake.polling_preference is None

    # Every request carried the token; only the PUTs declare a JSON body.
    assert {r.authorization for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert {r.content_type for r in fake.requests if r.method != "PUT"} == {None}
    assert page.js_errors == []


def test_phone_width_has_no_horizontal_overflow(make_page, fake, web_base):
    page = make_page(width=375, height=812)
    page.goto(f"{web_base}/?poll_ms=200#token={TOKEN}")
    expect = playwright_sync.expect
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    expect(page.locator(f'[data-job-id="{RUNNING_ID}"] [data-testid="job-stage"]')).to_have_text("Training")
    page.get_by_test_id("sync-button").click()
    expect(page.get_by_test_id("toast")).to_have_text("Discovered 3 jobs from Replicate")
    expect(page.locator('[data-testid="job-row"]')).to_have_count(11)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375 + 1, f"the page is {width}px wide at a 375px viewport"
    expect(page.get_by_test_id("polling-state")).to_have_text("Polling is on (automatic)")
    box = page.get_by_test_id("polling-select").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "dashboard-static-375.png"))


def test_websocket_event_reloads_highlights_and_reconnects(make_page, fake, web_base):
    fake.ws_url = "ws://jobsync.test/ws?stage=local"  # served by Playwright's WebSocket routing below
    sockets: list = []
    page = make_page()
    page.route_web_socket(lambda url: url.startswith("ws://jobsync.test/ws"), lambda ws: sockets.append(ws))
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    expect(page.get_by_test_id("connection-state")).to_have_text("Live")
    assert sockets[0].url == f"ws://jobsync.test/ws?stage=local&token={TOKEN}"

    lists, metrics = fake.count("/api/cloud/jobs"), fake.count("/api/cloud/metrics")
    job = next(j for j in fake.jobs if j["job_id"] == "que00000000000000000000001")
    job.update(status="running")
    message = {"type": "job_status_changed", "job_id": job["job_id"], "status": "running", "previous_status": "queued"}
    for _ in range(3):  # a burst is debounced into one reload
        sockets[0].send(json.dumps(message))
    row = page.locator('[data-testid="job-row"][data-job-id="que00000000000000000000001"]')
    expect(row).to_have_attribute("data-status", "running")
    expect(row).to_have_class(re.compile(r"\bis-flash\b"))
    assert fake.count("/api/cloud/jobs") == lists + 1
    assert fake.count("/api/cloud/metrics") == metrics + 1
    expect(row.get_by_test_id("job-progress")).to_have_count(1)  # a newly running job is polled

    sockets[0].close()
    expect(page.get_by_test_id("connection-state")).to_have_text("Reconnecting")
    expect(page.get_by_test_id("connection-state")).to_have_text("Live", timeout=4000)  # ~1 s backoff
    assert len(sockets) == 2
    assert page.js_errors == []


def _provider_refreshes(fake: FakeApi) -> int:
    """List requests that ask the API to refresh the active jobs from the provider."""
    return sum(1 for r in fake.requests if r.path == "/api/cloud/jobs" and r.query.get("sync_active") == ["true"])


def _plain_lists(fake: FakeApi) -> int:
    return sum(1 for r in fake.requests if r.path == "/api/cloud/jobs" and "sync_active" not in r.query)


def test_fallback_refresh_runs_only_while_the_websocket_is_not_open(make_page, fake, web_base):
    fake.ws_url = "ws://jobsync.test/ws"  # served by Playwright's WebSocket routing below
    sockets: list = []
    refuse = [False]

    def on_socket(ws) -> None:
        sockets.append(ws)
        if refuse[0]:
            ws.close()  # closed before the handler returns: the page never sees it open

    page = make_page()
    page.route_web_socket(lambda url: url.startswith("ws://jobsync.test/ws"), on_socket)
    page.goto(f"{web_base}/?refresh_ms=300#token={TOKEN}")
    expect = playwright_sync.expect
    connection = page.get_by_test_id("connection-state")
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    expect(connection).to_have_text("Live")

    # Live: pushed messages replace the provider refresh; several refresh periods pass without one.
    page.wait_for_timeout(100)  # a request sent just before the socket opened has reached the fake
    refreshes = _provider_refreshes(fake)
    page.wait_for_timeout(1500)  # five refresh periods
    assert _provider_refreshes(fake) == refreshes
    assert fake.progress_calls.get(RUNNING_ID, 0) >= 1  # inline progress is still polled

    # The socket drops and reconnecting fails for now: the fallback refresh starts.
    refuse[0] = True
    sockets[0].close()
    expect(connection).to_have_text("Reconnecting")
    wait_until(page, lambda: _provider_refreshes(fake) >= refreshes + 2, message="sync_active=true refreshes start")

    # The socket comes back: one plain catch-up reload, and the fallback refresh stops.
    lists = _plain_lists(fake)  # nothing else loads a plain list meanwhile
    refuse[0] = False
    expect(connection).to_have_text("Live", timeout=8000)  # within the backoff
    wait_until(page, lambda: _plain_lists(fake) > lists, message="a plain list reload catches up after reconnecting")
    page.wait_for_timeout(200)  # let the catch-up's other requests arrive
    refreshes = _provider_refreshes(fake)
    page.wait_for_timeout(1500)  # five refresh periods
    assert _provider_refreshes(fake) == refreshes
    assert _plain_lists(fake) == lists + 1 == 2  # the first load and one catch-up, no periodic plain reload
    # Metrics and the polling status: read once at start, by every fallback refresh, and by the catch-up.
    assert fake.count("/api/cloud/metrics") == 1 + refreshes + 1
    assert fake.count("/api/cloud/polling/status") == 1 + refreshes + 1
    assert connection.text_content().strip() == "Live"
    assert page.js_errors == []


@pytest.mark.parametrize(
    ("ws_url", "label"),
    [(None, "Offline"), ("unreachable", "Reconnecting")],
    ids=["no-websocket-url", "socket-never-opens"],
)
def test_fallback_refresh_runs_without_live_updates(make_page, fake, web_base, ws_url, label):
    if ws_url is None:
        fake.ws_url = None  # the server offers no live updates
    page = make_page()
    page.goto(f"{web_base}/?refresh_ms=300#token={TOKEN}")
    expect = playwright_sync.expect
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    expect(page.get_by_test_id("connection-state")).to_have_text(label)
    wait_until(page, lambda: _provider_refreshes(fake) >= 3, message="sync_active=true every refresh period")
    assert fake.count("/api/cloud/polling/status") >= 3
    assert page.js_errors == []
