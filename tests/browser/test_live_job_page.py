"""The job page in a real Chromium against the REAL local stack (`make run`'s `python -m local.stack`).

The simulator plays at its real speed, so its long training (about 20 minutes) is still running whatever the
machine's load: the tests open it from the list, watch its clock tick and its logs arrive over the
WebSocket, leave and come back by its address, and finally cancel it through the page. They share one
page and run in file order, like a user's session. What the page sends and hears on its WebSocket is
recorded from Chromium's own frames. The stack is the live tests' one stack of this test process
(tests/browser/conftest.py): the dashboard's tests may have synced it and sent it their own jobs first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from playwright import sync_api as playwright_sync

from tests.browser.live import OWN_JOB_PREFIX, ROWS, SERVER_WAIT_MS, eventually
from tests.stack_process import LocalStack, api, sync

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
DOCS = ROOT / "docs"
# The scripted training that runs for about 20 minutes at the simulator's real speed (scenarios.py).
LONG_TRAINING_CONFIG = "portrait-lora-v3"

expect = playwright_sync.expect


@pytest.fixture(scope="module")
def stack(live_stack) -> LocalStack:
    return live_stack


@pytest.fixture(scope="module")
def long_training(stack: LocalStack) -> dict:
    sync(stack)  # the scripted trainings are the newest jobs: the first pages bring them in
    running = api(stack, "GET", "/api/cloud/jobs", params={"status": "running", "limit": "500"}).json()["jobs"]
    found = [job for job in running if job["config_name"] == LONG_TRAINING_CONFIG]
    assert found, running
    return found[0]


class Frames:
    """The page's WebSocket frames, both ways, as JSON."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.received: list[dict] = []

    def attach(self, socket) -> None:
        socket.on("framesent", lambda payload: self.sent.append(_json(payload)))
        socket.on("framereceived", lambda payload: self.received.append(_json(payload)))


def _json(payload: str | bytes) -> dict:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@pytest.fixture(scope="module")
def frames() -> Frames:
    return Frames()


@pytest.fixture(scope="module")
def page(open_live_page, frames, long_training):
    """One page for the module, opened once the jobs are in (the list shows them without waiting for a push)."""
    return open_live_page(on_websocket=frames.attach)


def api_job(stack: LocalStack, job_id: str) -> dict:
    return api(stack, "GET", f"/api/cloud/jobs/{job_id}").json()["job"]


# --------------------------------------------------------------------------- tests


def test_a_running_job_opens_from_the_list_with_its_history_and_a_ticking_clock(page, stack, long_training):
    job_id = long_training["job_id"]
    row = page.locator(f'{ROWS}[data-job-id="{job_id}"]')
    expect(row).to_be_visible(timeout=SERVER_WAIT_MS)
    # The list: its time and cost so far, ticking, instead of "—".
    duration = row.locator(".col-duration")
    expect(duration).to_have_text(re.compile(r"^\d+m \d\ds$|^\d+h"), timeout=SERVER_WAIT_MS)
    expect(row.locator(".col-cost")).to_have_text(re.compile(r"^≈ \$\d+\.\d{4}$"))
    seen = duration.text_content()
    expect(duration).not_to_have_text(seen, timeout=SERVER_WAIT_MS)

    row.get_by_role("link", name=f"{long_training['model']} (job {job_id})").click()
    expect(page).to_have_url(re.compile(rf"#/jobs/{job_id}$"))
    expect(page.get_by_role("heading", level=2, name=long_training["model"])).to_be_visible()
    expect(page.get_by_test_id("job-page-status-badge")).to_have_text("running", timeout=SERVER_WAIT_MS)

    served = api_job(stack, job_id)
    steps = page.get_by_test_id("history-step")
    expect(steps).to_have_count(len(served["history"]))
    assert steps.evaluate_all("els => els.map(e => e.dataset.status)") == [s["status"] for s in served["history"]]
    assert [s["status"] for s in served["history"]] == ["queued", "running"]
    expect(page.get_by_test_id("job-page-price")).to_have_text(f"${served['price_per_second_usd']:.6f}/s")
    expect(page.get_by_test_id("job-page-hardware")).to_have_text(served["hardware_type"])
    assert served["model_version"], "the simulator's trainings have a version"
    version = page.get_by_test_id("job-page-version").locator("code")
    expect(version).to_have_attribute("title", served["model_version"])

    clock = page.get_by_test_id("job-page-duration")
    expect(clock).to_have_text(re.compile(r"^\d+m \d\ds$|^\d+h"))
    expect(clock).not_to_have_text(clock.text_content(), timeout=SERVER_WAIT_MS)
    expect(page.get_by_test_id("job-page-cost")).to_have_text(re.compile(r"^≈ \$\d+\.\d{4}$"))
    bar = page.get_by_test_id("job-page-progress")
    expect(bar).to_have_accessible_name(f"Training progress of {long_training['model']} (job {job_id})")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^\d"), timeout=SERVER_WAIT_MS)
    assert page.js_errors == []


def test_its_logs_appear_then_follow_live(page, stack, long_training, frames):
    job_id = long_training["job_id"]
    lines = page.get_by_test_id("job-logs").locator(".log-line")
    expect(lines.first).to_be_attached(timeout=SERVER_WAIT_MS)
    eventually(page, lambda: {"action": "follow", "job_id": job_id} in frames.sent, "the page follows the job")
    first_count = lines.count()

    # New lines pushed by the stack (from its own reads of the provider) reach the viewer.
    def pushed() -> bool:
        return any(f.get("type") == "job_log_lines" and f.get("job_id") == job_id for f in frames.received)

    eventually(page, pushed, "job_log_lines arrive on the WebSocket")
    eventually(page, lambda: lines.count() > first_count, "the viewer shows the pushed lines")
    newest = [line for f in frames.received if f.get("job_id") == job_id for line in f.get("lines", [])][-1]
    expect(lines.last).to_have_text(newest)
    logs = page.get_by_test_id("job-logs")
    expect(logs).to_have_attribute("data-autoscroll", "true")
    assert logs.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight") <= 1
    expect(page.get_by_test_id("job-logs-state")).to_contain_text("Following live")

    # The picture of the job page for the README: a running training, its progress, its logs following.
    expect(page.get_by_test_id("toast")).to_be_empty(timeout=SERVER_WAIT_MS)
    page.evaluate("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "job-page.png"))  # 1280x900, beside the dashboard's in the README
    if os.environ.get("JOBSYNC_UPDATE_README_SCREENSHOT"):
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS / "job-page.png", DOCS / "job-page.png")
    assert page.js_errors == []


def test_back_returns_to_the_list_and_stops_following(page, stack, long_training, frames):
    job_id = long_training["job_id"]
    page.go_back()
    expect(page.locator("section.jobs")).to_be_visible()
    expect(page.get_by_test_id("job-page")).to_be_hidden()
    eventually(page, lambda: {"action": "unfollow", "job_id": job_id} in frames.sent, "leaving unfollows")
    expect(page.get_by_role("link", name=f"{long_training['model']} (job {job_id})")).to_be_focused()
    assert page.js_errors == []


def test_an_ended_job_by_its_address_shows_its_history_and_no_cancel(page, stack):
    completed = api(stack, "GET", "/api/cloud/jobs", params={"status": "completed", "limit": "50"}).json()["jobs"]
    # One of the simulator's: a job the dashboard's tests made by webhook has no logs at the provider.
    ended = next(job for job in completed if not job["job_id"].startswith(OWN_JOB_PREFIX))
    served = api_job(stack, ended["job_id"])
    other = page.context.new_page()  # a fresh load of the address; the token is in the context's storage
    try:
        other.goto(f"{stack.url}/#/jobs/{ended['job_id']}")
        expect(other.get_by_test_id("job-page-status-badge")).to_have_text("completed", timeout=SERVER_WAIT_MS)
        steps = other.get_by_test_id("history-step")
        expect(steps).to_have_count(len(served["history"]))
        expect(steps.last).to_have_attribute("data-status", "completed")
        cost = "—" if served["cost_usd"] is None else f"${served['cost_usd']:.4f}"
        expect(other.get_by_test_id("job-page-cost")).to_have_text(cost)
        expect(other.get_by_test_id("job-cancel")).to_be_hidden()
        expect(other.get_by_test_id("job-logs-state")).not_to_have_text("", timeout=SERVER_WAIT_MS)
        expect(other.get_by_test_id("job-logs-state")).not_to_contain_text("Could not")
    finally:
        other.close()
    assert page.js_errors == []


def test_cancel_with_a_confirmation_ends_the_job(page, stack, long_training, frames):
    job_id = long_training["job_id"]
    page.get_by_role("link", name=f"{long_training['model']} (job {job_id})").click()
    cancel = page.get_by_role("button", name="Cancel job")
    expect(cancel).to_be_visible(timeout=SERVER_WAIT_MS)
    sent_before = len(frames.sent)
    cancel.click()
    dialog = page.get_by_role("dialog", name="Cancel this job?")
    expect(dialog).to_contain_text(f"(job {job_id}) will be stopped at Replicate")
    dialog.get_by_role("button", name="Yes, cancel the job").click()

    expect(page.get_by_test_id("job-page-status-badge")).to_have_text("cancelled", timeout=SERVER_WAIT_MS)
    expect(cancel).to_be_hidden()
    expect(page.get_by_test_id("job-action-alert")).to_be_hidden()
    expect(page.get_by_test_id("history-step").last).to_have_attribute("data-status", "cancelled")
    assert api_job(stack, job_id)["status"] == "cancelled"
    # Ended: the page stops following it.
    unfollow = {"action": "unfollow", "job_id": job_id}
    eventually(page, lambda: unfollow in frames.sent[sent_before:], "ended: unfollowed")
    assert page.js_errors == []
