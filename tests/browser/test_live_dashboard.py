"""The dashboard in a real Chromium against the REAL local stack (`make run`'s `python -m local.stack`).

Nothing is faked: the page is served by the stack's gateway, its API calls and its WebSocket reach
the stack, jobs come from the built-in Replicate simulator, and status changes are pushed by the stack.
The tests share one page and run in file order, like a user's session: load, Sync, watch progress move,
receive pushed status changes. The stack is the live tests' one stack of this test process
(tests/browser/conftest.py): the job page's tests may have synced it first.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from playwright import sync_api as playwright_sync

from tests.browser.live import OWN_JOB_PREFIX, ROWS, SECRET, SERVER_WAIT_MS, eventually
from tests.stack_process import LocalStack, send_signed_webhook, sync_until_quiet

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
DOCS = ROOT / "docs"
HOOK_JOB = f"{OWN_JOB_PREFIX}hook"
RUNNING_WITH_PROGRESS = '[data-testid="job-row"][data-status="running"] [data-testid="job-progress"][aria-valuenow]'

expect = playwright_sync.expect


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def stack(live_stack) -> LocalStack:
    return live_stack


@pytest.fixture(scope="module")
def jobs_before_the_page(stack) -> int:
    """How many jobs the stack held when the page opened: none, unless another module synced first."""
    return api(stack, "GET", "/api/cloud/metrics").json()["job_count"]


@pytest.fixture(scope="module")
def page(open_live_page, jobs_before_the_page):
    """One page for the whole module, opened once: the later tests prove nothing reloads it."""
    return open_live_page()


# --------------------------------------------------------------------------- helpers


def api(stack: LocalStack, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{stack.url}{path}", headers=stack.headers(), timeout=30, **kwargs)


def send_webhook(stack: LocalStack, payload: dict, webhook_id: str) -> httpx.Response:
    return send_signed_webhook(stack.url, SECRET, payload, webhook_id)


def hook_prediction(status: str, created_at: str) -> dict:
    finished = status in ("succeeded", "failed", "canceled")
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    return {
        "id": HOOK_JOB,
        "model": "browser/trainer",
        "status": status,
        "created_at": created_at,
        "started_at": created_at,
        "completed_at": now if finished else None,
        "metrics": {"predict_time": 42.0} if finished else {},
        "logs": "step 10/100 - loss: 0.5",
        "error": None,
        "output": None,
    }


def row_ids(page) -> list[str]:
    return page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.jobId)")


def running_progress(page) -> dict[str, float]:
    """job_id -> aria-valuenow of every running row whose bar has a value."""
    return page.evaluate(
        """sel => Object.fromEntries([...document.querySelectorAll(sel)].map(bar =>
               [bar.closest('[data-testid="job-row"]').dataset.jobId, Number(bar.getAttribute('aria-valuenow'))]))""",
        RUNNING_WITH_PROGRESS,
    )


# --------------------------------------------------------------------------- tests


def test_page_loads_with_the_token_from_the_fragment_and_goes_live(page, stack, jobs_before_the_page):
    # The stack's real WebSocket, and nothing wrong with the provider: a plain "Live", no banner.
    expect(page.get_by_test_id("connection-state")).to_have_text("Live", timeout=SERVER_WAIT_MS)
    expect(page.get_by_test_id("token-form")).to_be_hidden()
    assert "token" not in page.url, "the token is taken out of the address bar"
    assert page.evaluate("localStorage.getItem('jobsync.apiToken')") == stack.token
    if jobs_before_the_page == 0:  # a stack nobody has synced yet
        expect(page.locator("#jobs-status")).to_contain_text("No jobs yet", timeout=SERVER_WAIT_MS)
    else:  # the job page's tests synced it first: the page lists what the stack holds
        expect(page.locator("#jobs-status")).to_contain_text("Showing ", timeout=SERVER_WAIT_MS)
        expect(page.locator(ROWS).first).to_be_visible()
    expect(page.get_by_test_id("polling-state")).to_have_text("Polling is on (automatic)", timeout=SERVER_WAIT_MS)
    expect(page.get_by_test_id("trouble")).to_be_hidden()

    # The poller has ticked (every second here) and says so; its ticks went well.
    def a_tick_is_recorded() -> str | None:
        return api(stack, "GET", "/api/cloud/polling/status").json()["last_tick"]["at"]

    eventually(page, a_tick_is_recorded, message="the poller records its tick")
    assert api(stack, "GET", "/api/cloud/polling/status").json()["last_tick"]["error"] is None
    assert page.js_errors == []


def test_sync_shows_the_spinner_then_the_servers_count_and_the_rows(page, stack):
    held: list = []
    page.route("**/api/cloud/jobs/sync", lambda route: held.append(route))  # hold it; released below
    button, spinner = page.get_by_test_id("sync-button"), page.get_by_test_id("sync-spinner")
    expect(spinner).to_be_hidden()

    stored_before = api(stack, "GET", "/api/cloud/metrics").json()["job_count"]
    started = time.monotonic()
    with page.expect_response(
        lambda r: r.url.endswith("/api/cloud/jobs/sync") and r.request.method == "POST", timeout=2 * SERVER_WAIT_MS
    ) as answer:
        button.click()
        eventually(page, lambda: held, message="the sync request left the page")
        # In flight (held before it reaches the server): spinner shown, button busy.
        expect(spinner).to_be_visible()
        expect(button).to_be_disabled()
        expect(button).to_have_attribute("aria-busy", "true")
        page.wait_for_timeout(200)
        expect(spinner).to_be_visible()
        held[0].continue_()  # on to the real server
    page.unroute("**/api/cloud/jobs/sync")
    response = answer.value
    assert response.status == 200, response.text()
    synced, updated = response.json()["synced"], response.json()["updated"]
    print(f"\nsync answered in {time.monotonic() - started:.1f}s: {response.json()}")
    assert isinstance(synced, int) and synced >= 0
    if stored_before == 0:  # nobody had synced this stack: the page's sync is the one that finds the jobs
        assert synced > 0

    noun = "job" if synced == 1 else "jobs"
    also = f", {updated} updated" if updated else ""
    importing = response.json()["history_complete"] is False
    rest = ". The rest of the history is being imported in the background" if importing else ""
    expect(page.get_by_test_id("toast")).to_have_text(f"Discovered {synced} new {noun} from Replicate{also}{rest}")
    if importing:  # the simulator's history is deeper than the pages a sync reads: its import bar finishes
        expect(page.get_by_test_id("import-progress")).to_have_attribute("data-state", "done", timeout=SERVER_WAIT_MS)
        expect(page.get_by_test_id("import-progress-label")).to_contain_text("History imported: ")
    expect(spinner).to_be_hidden()
    expect(button).to_be_enabled()

    # The rows: the server's newest page, newest first.
    rows = page.locator(ROWS)
    expect(rows.first).to_be_visible(timeout=SERVER_WAIT_MS)

    def rows_match_the_server() -> bool:
        shown = row_ids(page)
        listed = [job["job_id"] for job in api(stack, "GET", "/api/cloud/jobs", params={"limit": "50"}).json()["jobs"]]
        assert shown == listed, f"rows {shown[:3]}... vs API {listed[:3]}..."
        return True

    eventually(page, rows_match_the_server, message="the rows are the API's newest jobs in its order")
    stamps = rows.locator("time").evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))")
    assert len(stamps) == rows.count() and stamps == sorted(stamps, reverse=True), "newest first"

    def total_matches() -> bool:
        count = api(stack, "GET", "/api/cloud/metrics").json()["job_count"]
        shown = page.get_by_test_id("metrics-total").text_content().replace(",", "")
        assert shown == str(count), f"metrics-total {shown!r}, API job_count {count}"
        return True

    eventually(page, total_matches, message="metrics-total shows the job count")
    total = int(page.get_by_test_id("metrics-total").text_content().replace(",", ""))
    assert total >= synced
    assert rows.count() == min(50, total)
    expect(page.get_by_role("button", name="Load more")).to_be_visible(visible=total > 50, timeout=SERVER_WAIT_MS)
    assert page.js_errors == []


def test_a_running_jobs_progress_bar_moves(page, stack):
    if not api(stack, "GET", "/api/cloud/jobs", params={"status": "running", "limit": "1"}).json()["jobs"]:
        # The sync test ran on another test process (or not at all): import the history as it does.
        sync_until_quiet(stack)
        page.reload()
    expect(page.locator(RUNNING_WITH_PROGRESS).first).to_be_attached(timeout=SERVER_WAIT_MS)
    before = running_progress(page)
    assert before, "a running job shows a progress value"

    # Any running job whose bar grows will do: the first one may finish meanwhile.
    page.wait_for_function(
        """([sel, before]) => [...document.querySelectorAll(sel)].some(bar => {
               const id = bar.closest('[data-testid="job-row"]').dataset.jobId;
               return id in before && Number(bar.getAttribute('aria-valuenow')) > before[id];
           })""",
        arg=[RUNNING_WITH_PROGRESS, before],
        timeout=SERVER_WAIT_MS,
        polling=100,
    )
    after = running_progress(page)
    moved = {
        job_id: (before[job_id], value)
        for job_id, value in after.items()
        if job_id in before and value > before[job_id]
    }
    assert moved, f"progress before {before}, after {after}"
    job_id, (old, new) = next(iter(moved.items()))
    print(f"\nprogress of {job_id}: {old} -> {new}")
    row = page.locator(f'{ROWS}[data-job-id="{job_id}"]')
    bar = row.get_by_test_id("job-progress")
    assert 0 <= old < new <= 100
    assert bar.evaluate("el => el.value") == pytest.approx(new, abs=0.1)
    assert row.get_by_test_id("job-stage").text_content() in {
        "Preprocessing",
        "Warmup",
        "Training",
        "Validation",
        "Saving checkpoint",
    }
    expect(row.get_by_test_id("job-last-log")).not_to_be_empty(timeout=SERVER_WAIT_MS)
    bar_name = f"Training progress of {row.locator('.job-model').text_content()} (job {job_id})"
    expect(bar).to_have_accessible_name(bar_name)

    # A picture of live jobs: the toast gone, a running job with its bar on screen.
    expect(page.get_by_test_id("toast")).to_be_empty(timeout=SERVER_WAIT_MS)
    # The list re-renders its rows as progress arrives: scroll to whichever element is the row now.
    page.evaluate("id => document.querySelector(`[data-job-id='${id}']`)?.scrollIntoView()", job_id)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)
    page.evaluate("window.scrollTo(0, 0)")
    expect(page.locator(RUNNING_WITH_PROGRESS).first).to_be_in_viewport()
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))  # 1280x900, as the README shows it
    if os.environ.get("JOBSYNC_UPDATE_README_SCREENSHOT"):
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS / "dashboard.png", DOCS / "dashboard.png")
    assert page.js_errors == []


def test_a_status_change_pushed_by_the_server_appears_without_a_reload(page, stack):
    # The job exists only in its webhooks; with polling on, the poller would find the simulator
    # does not know it and end it. With webhooks configured, polling is off: do as such a user would.
    # The stack is shared: the polling preference is put back as it was found.
    found = api(stack, "GET", "/api/cloud/polling/status").json()["preference"]
    answer = api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": False})
    assert answer.json()["is_active"] is False
    try:
        _a_status_change_appears_without_a_reload(page, stack)
    finally:
        answer = api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": found})
        assert answer.json()["preference"] == found, answer.text


def _a_status_change_appears_without_a_reload(page, stack: LocalStack) -> None:
    page.evaluate("window.__marker = 1")
    navigations = page.evaluate("performance.getEntriesByType('navigation').length")
    created_at = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")  # newest: in the first page of rows
    row = page.locator(f'{ROWS}[data-job-id="{HOOK_JOB}"]')
    expect(row).to_have_count(0)

    # Each status change reaches the page as a push and a list reload. This failed on a busy machine: pushes
    # came faster than the list answered, and the page showed only the latest request's answer, so none.
    answer = send_webhook(stack, hook_prediction("processing", created_at), "msg_browser_1")
    assert answer.status_code == 200, answer.text
    expect(row).to_have_attribute("data-status", "running", timeout=SERVER_WAIT_MS)
    expect(row.get_by_test_id("job-status")).to_have_text("running")
    assert row_ids(page)[0] == HOOK_JOB, "the newest job is the first row"

    answer = send_webhook(stack, hook_prediction("succeeded", created_at), "msg_browser_2")
    assert answer.status_code == 200, answer.text
    expect(row).to_have_attribute("data-status", "completed", timeout=SERVER_WAIT_MS)
    expect(row.get_by_test_id("job-status")).to_have_text("completed")
    expect(row.get_by_test_id("job-progress")).to_have_count(0)

    assert page.evaluate("window.__marker") == 1, "the page was not reloaded"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == navigations
    expect(page.get_by_test_id("connection-state")).to_have_text("Live")
    assert page.js_errors == []
