"""Debian's chromium driven by Playwright, shared by the browser tests.

No skipping: `make test` installs chromium, so a missing browser is a failure
that names the fix rather than a quiet gap.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright import sync_api as playwright_sync
from playwright.sync_api import Browser, sync_playwright

from tests.browser.fake_api import WEB_DIR, FakeApi, QuietHandler, free_port, pause_clock

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium keeps dialling out of this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Module scope, not session: while Playwright's sync API runs, the test process's main thread has a running
# event loop, and a later test's asyncio.run() (the e2e WebSocket tests) would refuse to start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: apt-get install -y --no-install-recommends chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


# The static page against the fake API (tests/browser/fake_api.py): test_dashboard_static, test_job_page_static.


@pytest.fixture(scope="module")
def web_base() -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(WEB_DIR))
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
    return FakeApi(ws_url=f"ws://127.0.0.1:{free_port()}/ws")


@pytest.fixture()
def make_page(browser, fake) -> Iterator[Callable]:
    contexts = []

    def _make(width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US", timezone_id="UTC")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)  # what a slow machine may need; a passing wait takes no longer
        pause_clock(page)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors  # type: ignore[attr-defined]
        page.route("**/api/**", fake.handle)
        return page

    # Expectations wait for the page up to 15 s (Playwright's default is 5 s): a passing one takes no longer.
    playwright_sync.expect.set_options(timeout=15_000)
    try:
        yield _make
    finally:
        playwright_sync.expect.set_options(timeout=5_000)
        for context in contexts:
            context.close()
