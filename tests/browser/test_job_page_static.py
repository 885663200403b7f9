"""One job's page (#/jobs/<id>) in a real Chromium, against the in-test fake API (tests/browser/fake_api.py).

The page's timers run on Playwright's paused clock (NOW + 1 s until a test moves it), so a ticking
duration is asserted to the second; the WebSocket is Playwright's routed socket, so the test sees what
the page sends (follow, unfollow) and pushes what the server would (job_log_lines, job_status_changed).
"""

from __future__ import annotations

import json
import re

import pytest
from playwright import sync_api as playwright_sync

from tests.browser.fake_api import ARTIFACTS, RUNNING_ID, RUNNING_MODEL, TOKEN, settle, wait_until

pytestmark = pytest.mark.browser

expect = playwright_sync.expect
WS = "ws://jobsync.test/ws"
ROWS = '[data-testid="job-row"]'
DONE_ID = "cmp00000000000000000000001"
FAILED_ID = "fal00000000000000000000001"
QUEUED_ID = "que00000000000000000000001"
# The page's clock stands at 2025-03-03T12:00:01Z: a job started 100 s before has run 1m 40s.
STARTED_100_S_AGO = "2025-03-03T11:58:21Z"


def job_of(fake_api, job_id: str) -> dict:
    return next(j for j in fake_api.jobs if j["job_id"] == job_id)


def open_deep_link(make_page_, web_base_: str, job_id: str, width: int = 1280):
    """A fresh load of the job's address, the token already stored (as after a first visit)."""
    page = make_page_(width=width)
    page.add_init_script(f"localStorage.setItem('jobsync.apiToken', {json.dumps(TOKEN)})")
    page.goto(f"{web_base_}/#/jobs/{job_id}")
    return page


def route_socket(page, sockets: list, received: list) -> None:
    def on_socket(ws) -> None:
        sockets.append(ws)
        ws.on_message(lambda message: received.append(json.loads(message)))

    page.route_web_socket(lambda url: url.startswith(WS), on_socket)


def log_push(job_id: str, *lines: str) -> str:
    return json.dumps({"type": "job_log_lines", "job_id": job_id, "lines": list(lines)})


def distance_from_bottom(logs) -> float:
    return logs.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight")


def settled_scroll_top(page, logs) -> float:
    """The viewer's scrollTop once a wheel's (possibly smooth) scroll has come to rest."""
    previous = None
    for _ in range(150):  # 15 s at most
        now = logs.evaluate("el => el.scrollTop")
        if now == previous:
            return now
        previous = now
        page.wait_for_timeout(100)
    raise AssertionError(f"the log viewer is still scrolling (scrollTop {previous})")


# --------------------------------------------------------------------------- tests


def test_a_click_opens_the_job_page_and_back_returns_to_the_list(make_page, fake, web_base):
    page = make_page()
    page.goto(f"{web_base}/#token={TOKEN}")
    rows = page.locator(ROWS)
    expect(rows).to_have_count(8)
    job_page = page.get_by_test_id("job-page")
    expect(job_page).to_be_hidden()

    page.get_by_role("link", name=f"{RUNNING_MODEL} (job {RUNNING_ID})").click()
    expect(page).to_have_url(re.compile(rf"#/jobs/{RUNNING_ID}$"))
    expect(job_page).to_be_visible()
    heading = page.get_by_role("heading", level=2, name=RUNNING_MODEL)
    expect(heading).to_be_visible()
    expect(heading).to_be_focused()  # a screen reader hears where it went
    expect(page.get_by_test_id("job-page-id")).to_have_text(RUNNING_ID)
    expect(page.get_by_test_id("job-page-status-badge")).to_have_text("running")
    page.get_by_role("link", name="Skip to the main content").focus()  # shown once focused, as a keyboard user meets it
    page.keyboard.press("Enter")  # stays on this page
    expect(page.locator("#main")).to_be_focused()
    expect(page).to_have_url(re.compile(rf"#/jobs/{RUNNING_ID}$"))
    expect(page.get_by_test_id("job-page")).to_be_visible()
    expect(page.locator("section.jobs")).to_be_hidden()
    expect(page).to_have_title(f"Job {RUNNING_ID} · jobsync")

    # The browser's Back: the list again, on the link of the job that was open.
    page.go_back()
    expect(job_page).to_be_hidden()
    expect(page.locator("section.jobs")).to_be_visible()
    assert page.evaluate("location.hash") == ""
    link = page.get_by_role("link", name=f"{RUNNING_MODEL} (job {RUNNING_ID})")
    expect(link).to_be_focused()
    expect(page).to_have_title("jobsync · Training jobs")
    # The list is rebuilt at each reload (here the fallback refresh: no socket): the focus stays on that job.
    job_of(fake, QUEUED_ID)["status"] = "running"
    page.clock.run_for(30_000)
    expect(page.locator(f'{ROWS}[data-job-id="{QUEUED_ID}"]')).to_have_attribute("data-status", "running")
    expect(link).to_be_focused()

    # A click anywhere on a row opens it too; "All jobs" then goes back in the history.
    page.locator(f'{ROWS}[data-job-id="{FAILED_ID}"] time').click()
    expect(page).to_have_url(re.compile(rf"#/jobs/{FAILED_ID}$"))
    expect(page.get_by_test_id("job-page-error")).to_contain_text("CUDA out of memory")
    length = page.evaluate("history.length")
    page.get_by_role("link", name="All jobs").click()
    expect(page.locator("section.jobs")).to_be_visible()
    assert page.evaluate("location.hash") == ""
    assert page.evaluate("history.length") == length, "All jobs went back instead of adding an entry"
    assert page.js_errors == []


def test_a_deep_link_shows_an_ended_job_with_its_history_and_no_cancel(make_page, fake, web_base):
    fake.histories[DONE_ID] = [
        {"status": "queued", "at": "2025-03-01T08:00:00Z"},
        {"status": "running", "at": "2025-03-01T08:02:30Z"},
        {"status": "completed", "at": "2025-03-01T09:04:35Z"},
    ]
    job_of(fake, DONE_ID).update(started_at="2025-03-01T08:02:30Z", completed_at="2025-03-01T09:04:35Z")
    fake.logs[DONE_ID] = ["loading weights", "step 1000/1000", "saved <b>weights</b>"]
    page = open_deep_link(make_page, web_base, DONE_ID)

    expect(page.get_by_role("heading", level=2, name="acme/flux-lora-trainer")).to_be_visible()
    version = job_of(fake, DONE_ID)["model_version"]
    expect(page.get_by_test_id("job-page-version")).to_have_text(f"{version[:12]}…")
    expect(page.get_by_test_id("job-page-version").locator("code")).to_have_attribute("title", version)
    steps = page.get_by_test_id("history-step")
    expect(steps).to_have_count(3)
    assert steps.evaluate_all("els => els.map(e => e.dataset.status)") == ["queued", "running", "completed"]
    expect(steps.nth(1).locator("time")).to_have_attribute("datetime", "2025-03-01T08:02:30.000Z")
    expect(steps.nth(1)).to_contain_text("after 2m 30s")
    expect(steps.nth(2)).to_contain_text("after 1h 02m 05s")

    expect(page.get_by_test_id("job-page-duration")).to_have_text("1h 02m 05s")
    expect(page.get_by_test_id("job-page-cost")).to_have_text("$5.6806")
    expect(page.get_by_test_id("job-page-hardware")).to_have_text("gpu-h100")
    expect(page.get_by_test_id("job-page-price")).to_have_text("$0.001525/s")
    expect(page.get_by_test_id("job-page-output")).to_have_attribute("href", "https://example.invalid/weights.tar")
    expect(page.get_by_test_id("job-cancel")).to_be_hidden()  # nothing to cancel
    expect(page.locator("#job-progress-card")).to_be_hidden()

    lines = page.get_by_test_id("job-logs").locator(".log-line")
    expect(lines).to_have_count(3)
    expect(lines.last).to_have_text("saved <b>weights</b>")  # text, never markup
    expect(page.get_by_test_id("job-logs-state")).not_to_contain_text("Following")

    # Another job by its address, in the same page; then one jobsync does not know.
    page.evaluate(f"location.hash = '#/jobs/{FAILED_ID}'")
    expect(page.get_by_test_id("job-page-error")).to_have_text(job_of(fake, FAILED_ID)["error_message"])
    expect(page.get_by_test_id("job-page-status-badge")).to_have_text("failed")
    page.evaluate("location.hash = '#/jobs/no-such-job'")
    expect(page.get_by_test_id("job-page-status")).to_have_text("jobsync knows no job with the ID no-such-job.")
    expect(page.locator("#job-body")).to_be_hidden()
    assert page.js_errors == []


def test_a_job_address_opened_without_a_token_shows_the_job_once_one_is_saved(make_page, fake, web_base):
    page = make_page()
    page.goto(f"{web_base}/#/jobs/{DONE_ID}")
    expect(page.get_by_test_id("job-page-status")).to_have_text("Enter the API token to see this job.")
    assert fake.requests == []
    form = page.get_by_test_id("token-form")
    page.get_by_label("Token", exact=True).fill(TOKEN)
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("job-page-status-badge")).to_have_text("completed")
    expect(page.get_by_test_id("job-page-status")).to_be_hidden()
    expect(page).to_have_url(re.compile(rf"#/jobs/{DONE_ID}$"))
    assert page.js_errors == []


def test_a_running_jobs_time_and_cost_so_far_tick_in_the_list_and_on_its_page(make_page, fake, web_base):
    job_of(fake, RUNNING_ID)["started_at"] = STARTED_100_S_AGO
    page = make_page()
    page.goto(f"{web_base}/#token={TOKEN}")
    row = page.locator(f'{ROWS}[data-job-id="{RUNNING_ID}"]')
    expect(row.locator(".col-duration")).to_have_text("1m 40s")
    expect(row.locator(".col-cost")).to_have_text("≈ $0.1525")  # 100 s at $0.001525/s
    page.clock.run_for(20_000)
    expect(row.locator(".col-duration")).to_have_text("2m 00s")
    expect(row.locator(".col-cost")).to_have_text("≈ $0.1830")
    # Ended jobs keep their final figures; a queued one has none yet.
    expect(page.locator(f'{ROWS}[data-job-id="{QUEUED_ID}"] .col-duration')).to_have_text("—")

    row.get_by_role("link").click()
    duration, cost = page.get_by_test_id("job-page-duration"), page.get_by_test_id("job-page-cost")
    expect(duration).to_have_text("2m 00s")
    expect(cost).to_have_text("≈ $0.1830")
    page.clock.run_for(65_000)
    expect(duration).to_have_text("3m 05s")
    expect(cost).to_have_text("≈ $0.2821")
    expect(page.locator("dt", has_text="Cost so far")).to_be_visible()

    bar = page.get_by_test_id("job-page-progress")
    expect(bar).to_have_accessible_name(f"Training progress of {RUNNING_MODEL} (job {RUNNING_ID})")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^\d+(\.\d)?$"))
    expect(page.get_by_test_id("job-page-stage")).to_have_text("Training")
    assert page.js_errors == []


def test_logs_follow_live_and_auto_scroll_pauses_while_the_reader_scrolls_up(make_page, fake, web_base):
    fake.ws_url = WS
    fake.logs[RUNNING_ID] = [f"step {i}/1000 - loss: 0.5" for i in range(1, 301)]
    sockets: list = []
    received: list[dict] = []
    page = make_page()
    route_socket(page, sockets, received)
    page.add_init_script(f"localStorage.setItem('jobsync.apiToken', {json.dumps(TOKEN)})")
    page.goto(f"{web_base}/#/jobs/{RUNNING_ID}")

    logs = page.get_by_test_id("job-logs")
    lines = logs.locator(".log-line")
    expect(lines).to_have_count(200)  # the first read asks for the last 200
    expect(lines.last).to_have_text("step 300/1000 - loss: 0.5")
    wait_until(page, lambda: {"action": "follow", "job_id": RUNNING_ID} in received, message="the page follows the job")
    expect(page.get_by_test_id("job-logs-state")).to_contain_text("Following live")
    assert distance_from_bottom(logs) <= 1, "the viewer starts at the newest line"

    sockets[0].send(log_push(RUNNING_ID, "step 301/1000 - loss: 0.4", "<i>not markup</i>"))
    sockets[0].send(log_push("some-other-job", "not this job's line"))
    expect(lines).to_have_count(202)
    expect(lines.last).to_have_text("<i>not markup</i>")
    assert distance_from_bottom(logs) <= 1, "following: the new lines are in view"

    # The reader scrolls up: new lines are added below, the view stays where it is.
    logs.hover()
    page.mouse.wheel(0, -600)
    expect(logs).to_have_attribute("data-autoscroll", "false")
    top = settled_scroll_top(page, logs)
    latest = page.get_by_role("button", name="Jump to the latest line")
    expect(latest).to_be_visible()
    sockets[0].send(log_push(RUNNING_ID, "step 302/1000", "step 303/1000"))
    expect(lines).to_have_count(204)
    assert logs.evaluate("el => el.scrollTop") == top
    assert distance_from_bottom(logs) > 100

    # Back at the bottom (the button, or scrolling down by hand): following again.
    latest.click()
    expect(logs).to_have_attribute("data-autoscroll", "true")
    expect(latest).to_be_hidden()
    sockets[0].send(log_push(RUNNING_ID, "step 304/1000"))
    expect(lines).to_have_count(205)
    assert distance_from_bottom(logs) <= 1
    logs.hover()  # the pointer was on the button
    page.mouse.wheel(0, -300)
    expect(logs).to_have_attribute("data-autoscroll", "false")
    page.mouse.wheel(0, 5_000)
    expect(logs).to_have_attribute("data-autoscroll", "true")

    # Leaving the page stops the follow.
    page.get_by_role("link", name="All jobs").click()
    expect(page.locator("section.jobs")).to_be_visible()
    wait_until(page, lambda: {"action": "unfollow", "job_id": RUNNING_ID} in received, message="unfollowed")
    sockets[0].send(log_push(RUNNING_ID, "after leaving"))
    page.evaluate("0")
    assert page.get_by_text("after leaving").count() == 0
    assert page.js_errors == []


def test_a_reconnected_socket_follows_again_and_a_pushed_status_change_reloads_the_job(make_page, fake, web_base):
    fake.ws_url = WS
    fake.logs[RUNNING_ID] = ["step 1/10"]
    sockets: list = []
    received: list[dict] = []
    page = make_page()
    route_socket(page, sockets, received)
    page.add_init_script(f"localStorage.setItem('jobsync.apiToken', {json.dumps(TOKEN)})")
    page.goto(f"{web_base}/#/jobs/{RUNNING_ID}")
    lines = page.get_by_test_id("job-logs").locator(".log-line")
    expect(lines).to_have_count(1)
    wait_until(page, lambda: len(received) == 1, message="followed once")

    # The server lost the connection: its follow went with it. The lines it missed are read once more.
    fake.logs[RUNNING_ID] = ["step 1/10", "step 2/10", "step 3/10"]
    sockets[0].close()
    expect(page.get_by_test_id("connection-state")).to_have_text("Reconnecting")
    page.clock.run_for(1_200)
    wait_until(page, lambda: len(sockets) == 2, message="reconnected")
    wait_until(page, lambda: len(received) == 2, message="followed on the new connection")
    assert received == [{"action": "follow", "job_id": RUNNING_ID}] * 2
    expect(lines).to_have_count(3)  # the overlap is not repeated

    job = job_of(fake, RUNNING_ID)
    job.update(status="completed", is_active=False, is_terminal=True, completed_at="2025-03-03T12:00:00Z")
    job.update(duration_seconds=900, cost_usd=1.3725)
    sockets[1].send(json.dumps({"type": "job_status_changed", "job_id": RUNNING_ID, "status": "completed"}))
    page.evaluate("0")
    page.clock.run_for(300)
    expect(page.get_by_test_id("job-page-status-badge")).to_have_text("completed")
    expect(page.get_by_test_id("job-page-cost")).to_have_text("$1.3725")
    expect(page.get_by_test_id("job-cancel")).to_be_hidden()
    wait_until(page, lambda: received[-1] == {"action": "unfollow", "job_id": RUNNING_ID}, message="ended: unfollowed")
    assert page.js_errors == []


def test_a_refused_follow_is_said_and_the_logs_are_read_again_with_the_job(make_page, fake, web_base):
    fake.ws_url = WS
    fake.logs[RUNNING_ID] = ["step 1/10"]
    sockets: list = []
    received: list[dict] = []
    page = make_page()
    route_socket(page, sockets, received)
    page.add_init_script(f"localStorage.setItem('jobsync.apiToken', {json.dumps(TOKEN)})")
    page.goto(f"{web_base}/#/jobs/{RUNNING_ID}")
    lines = page.get_by_test_id("job-logs").locator(".log-line")
    expect(lines).to_have_count(1)
    wait_until(page, lambda: received == [{"action": "follow", "job_id": RUNNING_ID}], message="followed")

    refusal = "a connection follows at most 10 jobs: unfollow one first"
    sockets[0].send(json.dumps({"type": "error", "error": "too_many_follows", "message": refusal}))
    expect(page.get_by_test_id("job-logs-state")).to_contain_text(f"Not following live ({refusal})")
    settle(page)  # the reads so far have been answered (one more follows the socket's opening when it came late)
    reads = [r for r in fake.requests if r.path.endswith("/logs")]
    fake.logs[RUNNING_ID] = ["step 1/10", "step 2/10", "step 3/10"]
    page.clock.run_for(30_000)  # the refresh interval: the job and its newest lines are read again
    expect(lines).to_have_count(3)
    assert [r.query.get("tail") for r in fake.requests if r.path.endswith("/logs")] == [["200"]] * (len(reads) + 1)
    assert page.js_errors == []


def test_cancel_asks_first_then_ends_the_job(make_page, fake, web_base):
    page = open_deep_link(make_page, web_base, QUEUED_ID)
    cancel = page.get_by_role("button", name="Cancel job")
    expect(cancel).to_be_visible()
    dialog = page.get_by_role("dialog", name="Cancel this job?")

    cancel.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"(job {QUEUED_ID}) will be stopped at Replicate")
    dialog.get_by_role("button", name="Keep it running").click()
    expect(dialog).to_be_hidden()
    assert fake.cancels == []  # asked, declined: nothing sent
    expect(cancel).to_be_focused()

    cancel.click()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert fake.cancels == []

    cancel.click()
    dialog.get_by_role("button", name="Yes, cancel the job").click()
    expect(page.get_by_test_id("job-page-status-badge")).to_have_text("cancelled")
    expect(cancel).to_be_hidden()
    assert fake.cancels == [QUEUED_ID]
    steps = page.get_by_test_id("history-step")
    expect(steps.last).to_have_attribute("data-status", "cancelled")
    expect(page.get_by_test_id("job-action-alert")).to_be_hidden()
    assert page.js_errors == []


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (409, {"error": "job_already_ended", "message": "The job has ended"}, "This job had already ended"),
        (
            403,
            {"error": "forbidden", "message": "this token's scope is read"},
            "cancelling needs an API token with the operate scope (403: this token's scope is read)",
        ),
        (502, {"error": "provider_error", "message": "Replicate answered 500"}, "Replicate answered 500"),
    ],
)
def test_a_refused_cancel_is_said_plainly(make_page, fake, web_base, status, body, shown):
    fake.cancel_answer = (status, body)
    page = open_deep_link(make_page, web_base, QUEUED_ID)
    page.get_by_role("button", name="Cancel job").click()
    page.get_by_role("dialog").get_by_role("button", name="Yes, cancel the job").click()
    alert = page.get_by_test_id("job-action-alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(shown)
    expect(alert).to_have_attribute("role", "alert")
    expect(page.get_by_role("button", name="Cancel job")).to_be_enabled()  # the job still runs: try again later
    assert fake.cancels == [QUEUED_ID]
    assert page.js_errors == []


def test_the_copy_button_puts_the_job_id_on_the_clipboard(make_page, fake, web_base):
    page = open_deep_link(make_page, web_base, RUNNING_ID)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web_base)
    button = page.get_by_role("button", name="Copy job ID")
    button.click()
    expect(page.get_by_test_id("job-copy-status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == RUNNING_ID
    page.clock.run_for(3_000)
    expect(page.get_by_test_id("job-copy-status")).to_be_empty()
    assert page.js_errors == []


def test_the_job_page_fits_a_phone(make_page, fake, web_base):
    job_of(fake, RUNNING_ID)["started_at"] = STARTED_100_S_AGO
    fake.logs[RUNNING_ID] = [f"epoch 1/3 step {i}/1000 - loss: 0.{i:04d} lr=1e-4 grad_norm=0.31" for i in range(40)]
    page = open_deep_link(make_page, web_base, RUNNING_ID, width=375)
    expect(page.get_by_test_id("job-logs").locator(".log-line")).to_have_count(40)
    expect(page.get_by_test_id("job-page-stage")).to_have_text("Training")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375 + 1, f"the job page is {width}px wide at a 375px viewport"
    for name in ("Cancel job", "Copy job ID"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "job-page-static-375.png"), full_page=True)
    assert page.js_errors == []
