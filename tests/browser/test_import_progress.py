"""The dashboard's history import bar, driven by `sync_progress` messages over the WebSocket.

Static page against the fake API (tests/browser/fake_api.py), the socket routed by Playwright: the test
pushes what the history importer would push, and the page's clock moves only when the test says so.
"""

from __future__ import annotations

import json

import pytest
from playwright import sync_api as playwright_sync

from tests.browser.fake_api import TOKEN, settle, wait_until

pytestmark = pytest.mark.browser


def progress(imported: int, done: bool) -> str:
    return json.dumps({"type": "sync_progress", "imported": imported, "done": done})


def test_the_import_bar_counts_up_while_the_history_imports_then_fills_and_goes_away(make_page, fake, web_base):
    fake.ws_url = "ws://jobsync.test/ws"
    sockets: list = []
    page = make_page()
    page.route_web_socket(lambda url: url.startswith("ws://jobsync.test/ws"), lambda ws: sockets.append(ws))
    page.goto(f"{web_base}/#token={TOKEN}")
    expect = playwright_sync.expect
    expect(page.get_by_test_id("connection-state")).to_have_text("Live")
    box, label = page.get_by_test_id("import-progress"), page.get_by_test_id("import-progress-label")
    bar = page.get_by_test_id("import-progress-bar")
    expect(box).to_have_count(0)  # no import, no bar

    sockets[0].send(progress(200, False))
    expect(box).to_be_visible()
    expect(label).to_have_text("Importing the history in the background: 200 jobs so far")
    expect(box).to_have_attribute("data-state", "running")
    assert bar.evaluate("bar => bar.position") == -1  # indeterminate: no total is known

    sockets[0].send(progress(700, False))
    expect(box).to_have_attribute("data-imported", "700")  # the count moves

    lists = fake.count("/api/cloud/jobs")
    sockets[0].send(progress(1000, True))
    expect(label).to_have_text("History imported: 1000 jobs")
    expect(box).to_have_attribute("data-state", "done")
    assert bar.evaluate("bar => bar.value === bar.max && bar.position === 1")  # full
    page.clock.run_for(1_000)
    # The list is read again once the import is done, once. Its request reaches the fake (a route event)
    # only while Playwright is waited on: wait for it, then let every later request arrive before counting.
    wait_until(page, lambda: fake.count("/api/cloud/jobs") > lists, message="the list is read again")
    settle(page)
    assert fake.count("/api/cloud/jobs") == lists + 1
    page.clock.run_for(6_000)
    expect(box).to_be_hidden()

    sockets[0].send(json.dumps({"type": "sync_progress", "imported": "lots"}))  # malformed: shown as 0, never breaks
    expect(label).to_have_text("Importing the history in the background: 0 jobs so far")
    assert page.js_errors == []
