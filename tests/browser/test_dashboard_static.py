"""The static dashboard (web/) in a real Chromium, against an in-test fake of the HTTP API.

The page is served by a throwaway http.server; every `/api/**` request is answered by the
`FakeApi` of tests/browser/fake_api.py through Playwright's request interception: no jobsync server.

Every page runs its timers (polls, refreshes, health checks, reconnects, the toast) on Playwright's
clock, paused: time moves only when a test says so (`page.clock.run_for`), so what a test reads
cannot change under it, however slow the machine. Waits for the page itself are auto-waiting
expectations with a generous timeout, never fixed sleeps.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from playwright import sync_api as playwright_sync

from tests.browser.fake_api import (
    ARTIFACTS,
    HEALTH_MS,
    POLL_MS,
    REFRESH_MS,
    REFUSED,
    RUNNING_ID,
    RUNNING_MODEL,
    TOAST_MS,
    TOKEN,
    VALID,
    FakeApi,
    Seen,
    fake_job,
    row_ids,
    settle,
    wait_until,
)

pytestmark = pytest.mark.browser


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

    # The address with the token was replaced, not followed by a new entry: Back does not bring it back.
    page.go_back()
    assert page.url == "about:blank"


def test_sync_shows_spinner_then_toast_and_reloads(make_page, fake, web_base):
    fake.hold_sync = True
    page = make_page()
    page.goto(f"{web_base}/#token={TOKEN}")
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
    expect(toast).to_have_text("Discovered 3 new jobs from Replicate, 1 updated")
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
    # The polls run on Playwright's clock, at the product's 5 s. With a 200 ms wall-clock interval this
    # test read a value, then the bar, and a poll landed in between (31 % read, 45 % shown) on a busy machine.
    page = make_page()
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    row = page.locator(f'[data-testid="job-row"][data-job-id="{RUNNING_ID}"]')
    bar = row.get_by_test_id("job-progress")

    # The fake answers step 100 + 70 per call: 17 %, then 24 %, then 31 %; one poll per interval.
    expect(bar).to_have_attribute("aria-valuenow", "17")
    expect(row.get_by_test_id("job-stage")).to_have_text("Training")
    for value in ("24", "31"):
        page.clock.run_for(POLL_MS)
        expect(bar).to_have_attribute("aria-valuenow", value)
    assert bar.evaluate("el => el.value") == pytest.approx(31, abs=0.1)
    expect(row.get_by_test_id("job-last-log")).to_contain_text("step 310/1000")
    expect(row).to_contain_text("ETA 23m 00s")
    assert fake.progress_calls == {RUNNING_ID: 3}  # only the running job is polled, once per interval

    # The job ends; the next list load stops its polling.
    job = next(j for j in fake.jobs if j["job_id"] == RUNNING_ID)
    job.update(status="completed", is_active=False, is_terminal=True, duration_seconds=900, cost_usd=1.3725)
    page.get_by_test_id("sync-button").click()
    expect(row).to_have_attribute("data-status", "completed")
    expect(bar).to_have_count(0)
    page.clock.run_for(10 * POLL_MS)
    settle(page)
    assert fake.progress_calls == {RUNNING_ID: 3}
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
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    expect(page.locator(f'[data-job-id="{RUNNING_ID}"] [data-testid="job-stage"]')).to_have_text("Training")
    page.get_by_test_id("sync-button").click()
    expect(page.get_by_test_id("toast")).to_have_text("Discovered 3 new jobs from Replicate, 1 updated")
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
    page.evaluate("0")  # after the messages, which went the same way
    page.clock.run_for(300)
    row = page.locator('[data-testid="job-row"][data-job-id="que00000000000000000000001"]')
    expect(row).to_have_attribute("data-status", "running")
    expect(row).to_have_class(re.compile(r"\bis-flash\b"))
    settle(page)
    assert fake.count("/api/cloud/jobs") == lists + 1
    assert fake.count("/api/cloud/metrics") == metrics + 1
    expect(row.get_by_test_id("job-progress")).to_have_count(1)  # a newly running job is polled

    sockets[0].close()
    expect(page.get_by_test_id("connection-state")).to_have_text("Reconnecting")
    page.clock.run_for(1_200)  # the first retry: 1 s, give or take a fifth
    expect(page.get_by_test_id("connection-state")).to_have_text("Live")
    assert len(sockets) == 2
    assert page.js_errors == []


def _push_status(fake: FakeApi, socket, job_id: str, status: str) -> None:
    job = next(j for j in fake.jobs if j["job_id"] == job_id)
    previous = job["status"]
    job.update(status=status, is_active=status in {"pending", "uploading", "queued", "running"})
    job["is_terminal"] = not job["is_active"]
    socket.send(
        json.dumps({"type": "job_status_changed", "job_id": job_id, "status": status, "previous_status": previous})
    )


def test_reloads_faster_than_the_server_answers_still_show_each_answer(make_page, fake, web_base):
    """Pushes kept coming while each reload was slower than the gap between them: no answer was ever shown."""
    fake.ws_url = "ws://jobsync.test/ws"
    sockets: list = []
    page = make_page()
    page.route_web_socket(lambda url: url.startswith("ws://jobsync.test/ws"), lambda ws: sockets.append(ws))
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    expect(page.get_by_test_id("connection-state")).to_have_text("Live")
    queued = page.locator('[data-testid="job-row"][data-job-id="que00000000000000000000001"]')
    uploading = page.locator('[data-testid="job-row"][data-job-id="upl00000000000000000000001"]')
    expect(queued).to_have_attribute("data-status", "queued")

    fake.hold_lists = True
    _push_status(fake, sockets[0], "que00000000000000000000001", "running")
    page.evaluate("0")
    page.clock.run_for(300)  # the first reload leaves
    wait_until(page, lambda: len(fake.held_lists) == 1, message="the first reload reached the API")
    _push_status(fake, sockets[0], "upl00000000000000000000001", "queued")
    page.evaluate("0")
    page.clock.run_for(300)  # the second leaves before the first is answered
    wait_until(page, lambda: len(fake.held_lists) == 2, message="the second reload reached the API")

    fake.release_list()  # the first answer arrives while the second request is out: it is shown
    expect(queued).to_have_attribute("data-status", "running")
    fake.release_list()
    expect(uploading).to_have_attribute("data-status", "queued")
    assert page.js_errors == []


def test_a_failed_reload_is_retried(make_page, fake, web_base):
    fake.ws_url = "ws://jobsync.test/ws"
    sockets: list = []
    page = make_page()
    page.route_web_socket(lambda url: url.startswith("ws://jobsync.test/ws"), lambda ws: sockets.append(ws))
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    expect(page.get_by_test_id("connection-state")).to_have_text("Live")
    row = page.locator('[data-testid="job-row"][data-job-id="que00000000000000000000001"]')
    expect(row).to_have_attribute("data-status", "queued")

    fake.failing_lists = 2
    _push_status(fake, sockets[0], "que00000000000000000000001", "running")
    page.evaluate("0")
    page.clock.run_for(300)
    expect(page.locator("#jobs-status")).to_have_text("Could not load jobs: the job store did not answer")
    page.clock.run_for(2_000)  # first retry: fails again
    wait_until(page, lambda: fake.failing_lists == 0, message="the first retry reached the API")
    # The next retry (twice the wait: 4 s) is scheduled once the page has handled that failed answer, which
    # the fake cannot see: moving the clock 4 s at once could come before it and never fire the timer.
    for _ in range(8):
        page.clock.run_for(1_000)
        if row.get_attribute("data-status") == "running":
            break
    expect(row).to_have_attribute("data-status", "running")
    expect(page.locator("#jobs-status")).to_have_text("Showing 8 jobs.")
    settle(page)
    lists = fake.count("/api/cloud/jobs")
    page.clock.run_for(60_000)  # no more retries once one worked (the socket is open: no refresh either)
    settle(page)
    assert fake.count("/api/cloud/jobs") == lists
    assert page.js_errors == []


def _live(page) -> None:
    """Serve the page's WebSocket from the test, so that the connection pill can say Live."""
    page.route_web_socket(lambda url: url.startswith("ws://jobsync.test/ws"), lambda ws: None)


def test_a_refused_token_is_a_banner_until_validate_answers_valid(make_page, fake, web_base):
    fake.ws_url = "ws://jobsync.test/ws"
    fake.validate = REFUSED
    page = make_page()
    _live(page)
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    alert = page.get_by_test_id("provider-alert")
    connection = page.get_by_test_id("connection-state")

    # Checked at load: the banner names the problem, the provider's words and the variable to fix.
    expect(alert).to_be_visible()
    expect(alert).to_have_attribute("role", "alert")
    expect(alert.locator(".alert__title")).to_have_text("Replicate refused the token: check REPLICATE_API_TOKEN")
    expect(alert).to_contain_text("You did not pass a valid authentication token")
    # The socket is open, but "Live" alone would say all is well.
    expect(connection).to_have_text("Live, provider failing")
    expect(connection).to_have_attribute("data-state", "degraded")
    assert fake.count("/api/cloud/replicate/validate") == 1

    # Not a toast: minutes later it is still there (checked again at every health check).
    page.clock.run_for(2 * HEALTH_MS)
    settle(page)
    expect(alert).to_be_visible()
    assert fake.count("/api/cloud/replicate/validate") == 3

    # Fixed: the next health check answers valid, and the banner goes.
    fake.validate = VALID
    page.clock.run_for(HEALTH_MS)
    expect(alert).to_be_hidden()
    expect(page.get_by_test_id("trouble")).to_be_hidden()
    expect(connection).to_have_text("Live")
    expect(connection).to_have_attribute("data-state", "live")

    # While all is well, health checks do not ask the provider.
    page.clock.run_for(3 * HEALTH_MS)
    settle(page)
    assert fake.count("/api/cloud/replicate/validate") == 4
    assert page.js_errors == []


def test_a_failed_sync_leaves_a_banner_naming_the_variable_to_fix(make_page, fake, web_base):
    page = make_page()
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    alert = page.get_by_test_id("provider-alert")
    toast = page.get_by_test_id("toast")
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    settle(page)
    assert fake.count("/api/cloud/replicate/validate") == 1
    expect(page.get_by_test_id("trouble")).to_be_hidden()

    refused = "Replicate GET /v1/predictions failed: ConnectError: [Errno 111] Connection refused"
    fake.sync_answer = (502, {"error": "provider_error", "message": f"the provider failed: {refused}"})
    fake.validate = {"valid": False, "username": None, "error": f"could not reach the provider: {refused}"}
    page.get_by_test_id("sync-button").click()

    expect(toast).to_contain_text("Connection refused")
    expect(alert.locator(".alert__title")).to_have_text("Cannot reach the provider: check REPLICATE_API_BASE_URL")
    expect(alert).to_contain_text("could not reach the provider: Replicate GET /v1/predictions")
    assert fake.count("/api/cloud/replicate/validate") == 2

    # The toast goes, the banner stays.
    page.clock.run_for(TOAST_MS + 1_000)
    expect(toast).to_be_empty()
    expect(alert).to_be_visible()

    # Fixed; "Check again" asks at once.
    fake.validate, fake.sync_answer = VALID, None
    alert.get_by_role("button", name="Check again").click()
    expect(alert).to_be_hidden()
    assert page.js_errors == []


def test_failing_polling_is_shown_until_a_tick_goes_well(make_page, fake, web_base):
    fake.ws_url = "ws://jobsync.test/ws"
    error = "replicate: training list: Replicate GET /v1/trainings: HTTP 503: Service Unavailable"
    fake.last_tick = {"at": "2025-03-03T11:59:30Z", "error": error}
    page = make_page()
    _live(page)
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    state = page.get_by_test_id("polling-state")
    alert = page.get_by_test_id("polling-alert")
    connection = page.get_by_test_id("connection-state")

    expect(state).to_have_text("Polling is failing (automatic)")
    expect(state).to_have_attribute("data-state", "failing")
    expect(state).to_have_attribute("title", error)
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Background polling is failing")
    expect(alert).to_contain_text(f"{error} (last failed tick at 11:59:30 AM)")
    expect(connection).to_have_text("Live, provider failing")
    expect(page.get_by_test_id("provider-alert")).to_be_hidden()  # the credentials themselves are good

    # The poller recovers; the next health check reads it.
    fake.last_tick = {"at": "2025-03-03T12:00:00Z", "error": None}
    page.clock.run_for(HEALTH_MS)
    expect(state).to_have_text("Polling is on (automatic)")
    expect(state).to_have_attribute("data-state", "on")
    expect(alert).to_be_hidden()
    expect(connection).to_have_text("Live")

    # A failure while polling is off is history, not trouble.
    fake.polling_preference = False
    fake.last_tick = {"at": "2025-03-03T12:00:30Z", "error": error}
    page.clock.run_for(HEALTH_MS)
    expect(state).to_have_text("Polling is off (forced)")
    expect(alert).to_be_hidden()
    assert page.js_errors == []


def test_a_failing_progress_poll_asks_for_the_provider_check_at_most_every_ten_seconds(make_page, fake, web_base):
    page = make_page()
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    row = page.locator(f'[data-testid="job-row"][data-job-id="{RUNNING_ID}"]')
    expect(row.get_by_test_id("job-progress")).to_have_attribute("aria-valuenow", "17")
    settle(page)
    assert fake.count("/api/cloud/replicate/validate") == 1

    fake.validate = REFUSED
    message = "the provider refused our credentials: You did not pass a valid authentication token"
    fake.progress_failure = (502, {"error": "provider_auth_failed", "message": message})

    def failed_poll(calls: int) -> None:  # one interval on, the next poll has failed
        page.clock.run_for(POLL_MS)
        wait_until(page, lambda: fake.progress_calls[RUNNING_ID] == calls, message=f"poll {calls}")
        settle(page)

    failed_poll(2)  # 5 s after the check at load: too soon to ask again
    assert fake.count("/api/cloud/replicate/validate") == 1
    failed_poll(3)  # 10 s after it
    expect(page.get_by_test_id("provider-alert")).to_contain_text("check REPLICATE_API_TOKEN")
    assert fake.count("/api/cloud/replicate/validate") == 2
    failed_poll(4)  # 5 s after the last check
    assert fake.count("/api/cloud/replicate/validate") == 2
    expect(row.get_by_test_id("job-progress")).to_have_attribute("aria-valuenow", "17")  # last known value
    assert page.js_errors == []


def test_the_sync_message_counts_new_and_updated_jobs(make_page, fake, web_base):
    page = make_page()
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    toast = page.get_by_test_id("toast")
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    fake.sync_answer = (200, {"synced": 1, "updated": 0, "message": "Discovered 1 new jobs from Replicate"})
    page.get_by_test_id("sync-button").click()
    expect(toast).to_have_text("Discovered 1 new job from Replicate")  # nothing about updates when none
    fake.sync_answer = (200, {"synced": 0, "updated": 2, "message": "Discovered 0 new jobs from Replicate"})
    page.get_by_test_id("sync-button").click()
    expect(toast).to_have_text("Discovered 0 new jobs from Replicate, 2 updated")
    fake.sync_answer = (
        200,
        {"synced": 20, "updated": 0, "message": "Discovered 20 new jobs from Replicate", "history_complete": False},
    )
    page.get_by_test_id("sync-button").click()
    expect(toast).to_have_text(
        "Discovered 20 new jobs from Replicate. The rest of the history is being imported in the background"
    )


def test_each_progress_bar_names_its_job_and_the_page_has_an_icon(make_page, fake, web_base):
    fake.jobs.append(fake_job("r2ndrunning000000000000001", "running", "2025-03-03T10:20:00Z", model="acme/other"))
    page = make_page()
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    bars = page.get_by_role("progressbar")
    expect(bars).to_have_count(2)
    names = {
        f"Training progress of {RUNNING_MODEL} (job {RUNNING_ID})",
        "Training progress of acme/other (job r2ndrunning000000000000001)",
    }
    for name in names:
        expect(page.get_by_role("progressbar", name=name, exact=True)).to_have_count(1)

    href = page.locator('link[rel="icon"]').get_attribute("href")
    assert href and href.startswith("data:image/svg+xml,")
    width = page.evaluate(
        """href => new Promise(done => {
               const image = new Image();
               image.onload = () => done(image.naturalWidth);
               image.onerror = () => done(0);
               image.src = href;
           })""",
        href,
    )
    assert width > 0, "the icon is an image the browser can draw"


def test_fifty_jobs_at_phone_width_are_compact_rows(make_page, fake, web_base):
    statuses = ["completed", "failed", "queued", "cancelled", "completed", "running"]
    for n in range(42):
        status = statuses[n % len(statuses)]
        fake.jobs.append(
            fake_job(
                f"bulk{n:022d}",
                status,
                f"2025-02-{1 + n % 19:02d}T{n % 24:02d}:00:00Z",
                duration_seconds=100 + n,
                cost_usd=None if status == "running" else 0.05 * n,
                error_message="CUDA out of memory. Tried to allocate 2.50 GiB" if status == "failed" else None,
                output_url="https://example.invalid/weights.tar" if status == "completed" else None,
            )
        )
    page = make_page(width=390, height=844)
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    rows = page.locator('[data-testid="job-row"]')
    expect(rows).to_have_count(50)
    expect(page.locator(f'[data-job-id="{RUNNING_ID}"] [data-testid="job-stage"]')).to_have_text("Training")
    expect(page.get_by_test_id("metrics-total")).to_have_text("50")

    # One card per job made 50 jobs about 12,000 px tall; two lines a job, they are under 4,000.
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 4000, f"50 jobs are {height}px tall at 390px"
    heights = rows.evaluate_all("rows => rows.map(row => row.getBoundingClientRect().height)")
    assert max(heights) <= 70, f"rows of {sorted(set(round(h) for h in heights))}px"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # A running job's second line is its stage, bar and percentage, side by side.
    running = page.locator(f'[data-job-id="{RUNNING_ID}"]')
    stage, bar, pct = (
        running.locator(selector).bounding_box() for selector in (".progress__stage", "progress", ".progress__pct")
    )
    assert stage["x"] + stage["width"] <= bar["x"] and bar["x"] + bar["width"] <= pct["x"]
    assert abs((stage["y"] + stage["height"] / 2) - (bar["y"] + bar["height"] / 2)) < 8

    # The overview is one line: the totals and the counts by status.
    tops = {
        round(page.locator(selector).first.bounding_box()["y"])
        for selector in ('[data-testid="metrics-total"]', '[data-testid="metrics-cost"]', ".status-count")
    }
    assert max(tops) - min(tops) < 8, tops

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-static-390.png"))
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
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    connection = page.get_by_test_id("connection-state")
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    expect(connection).to_have_text("Live")

    # Live: pushed messages replace the provider refresh; five refresh periods pass without one.
    settle(page)
    statuses = fake.count("/api/cloud/polling/status")
    page.clock.run_for(5 * REFRESH_MS)
    settle(page)
    assert _provider_refreshes(fake) == 0
    assert fake.progress_calls[RUNNING_ID] > 1  # inline progress is still polled
    assert fake.count("/api/cloud/polling/status") == statuses + 5  # the health check, every 30 s

    # The socket drops and reconnecting fails for now: the fallback refresh starts.
    refuse[0] = True
    sockets[0].close()
    expect(connection).to_have_text("Reconnecting")
    page.clock.run_for(2 * REFRESH_MS)
    settle(page)
    assert _provider_refreshes(fake) == 2

    # The socket comes back (the next attempt is at most 30 s away): one plain catch-up reload, with the
    # polling status, and the fallback refresh stops.
    lists, statuses = _plain_lists(fake), fake.count("/api/cloud/polling/status")
    refuse[0] = False
    page.clock.run_for(30_000)
    expect(connection).to_have_text("Live")
    page.clock.run_for(500)  # the catch-up is debounced
    wait_until(page, lambda: _plain_lists(fake) == lists + 1, message="a plain list reload catches up")
    settle(page)
    assert fake.count("/api/cloud/polling/status") >= statuses + 1
    refreshes, lists = _provider_refreshes(fake), _plain_lists(fake)
    page.clock.run_for(5 * REFRESH_MS)
    settle(page)
    assert _provider_refreshes(fake) == refreshes
    assert _plain_lists(fake) == lists  # no periodic plain reload either
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
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    expect(page.locator('[data-testid="job-row"]')).to_have_count(8)
    expect(page.get_by_test_id("connection-state")).to_have_text(label)
    page.clock.run_for(3 * REFRESH_MS)
    settle(page)
    assert _provider_refreshes(fake) == 3  # sync_active=true every refresh period
    assert fake.count("/api/cloud/polling/status") == 1 + 3  # at load, then every health check
    assert page.js_errors == []
