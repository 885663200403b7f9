"""Debian's chromium driven by Playwright, shared by the browser tests.

No skipping: `make test` installs chromium, so a missing browser is a failure
that names the fix rather than a quiet gap.

One chromium per test process and, for the live tests (test_live_*.py), one local stack per test process:
each launched by the first test that needs it and closed once the next test does not (see
`pytest_runtest_teardown`). A test gets a context of its own (`make_page`); the live modules each open one
page for their user's session (`open_live_page`).
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright import sync_api as playwright_sync
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.browser import live
from tests.browser.fake_api import WEB_DIR, FakeApi, QuietHandler, free_port, pause_clock
from tests.stack_process import LocalStack

BROWSER_TESTS = Path(__file__).resolve().parent

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


class _Chromium:
    """Chromium for this test process: launched by the first browser test, closed before any other test.

    Closed before the others because while Playwright's sync API runs, the main thread has a running event
    loop, and a later test's asyncio.run() (the e2e WebSocket tests) would refuse to start.
    """

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def get(self) -> Browser:
        if self._browser is None:
            if not Path(CHROMIUM).exists():
                pytest.fail("Debian chromium is missing: apt-get install -y --no-install-recommends chromium")
            playwright = sync_playwright().start()
            try:
                self._browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            except BaseException:
                playwright.stop()
                raise
            self._playwright = playwright
        return self._browser

    def close(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        try:
            if browser is not None:
                browser.close()
        finally:
            if playwright is not None:
                playwright.stop()


class _LiveStack:
    """The live tests' local stack for this test process (`make run`'s, its simulator at its real speed: the
    ~20 minute training the job page's tests need is still running however long the others took)."""

    def __init__(self) -> None:
        self._stack: LocalStack | None = None

    def get(self, tmp_path_factory: pytest.TempPathFactory) -> LocalStack:
        if self._stack is None:
            stack = LocalStack(
                tmp_path_factory.mktemp("browser-live-stack"),
                token=live.TOKEN,
                webhook_secret=live.SECRET,
                SIMPLETUNER_JOB_POLL_INTERVAL="1",
            )
            stack.start()
            self._stack = stack
        return self._stack

    def close(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.stop()


_CHROMIUM = _Chromium()
_LIVE_STACK = _LiveStack()


# trylast: after pytest's own teardown, which closes the finishing test's contexts and pages first.
@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the stack before a test that does not use it and chromium before a test outside tests/browser:
    an idle stack still polls the simulator, and chromium's event loop is in other tests' way."""
    try:
        if nextitem is None or "live_stack" not in getattr(nextitem, "fixturenames", ()):
            _LIVE_STACK.close()
    finally:
        if nextitem is None or BROWSER_TESTS not in Path(nextitem.path).parents:
            _CHROMIUM.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    # A run stopped early (-x, Ctrl-C) has no last teardown with nextitem None.
    try:
        _LIVE_STACK.close()
    finally:
        _CHROMIUM.close()


# Module scope: the live modules' one page per module uses it; the same chromium serves every module.
@pytest.fixture(scope="module")
def browser() -> Browser:
    return _CHROMIUM.get()


# The live tests (test_live_dashboard, test_live_job_page) against the real local stack.


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> LocalStack:
    return _LIVE_STACK.get(tmp_path_factory)


@pytest.fixture(scope="module")
def open_live_page(browser: Browser, live_stack: LocalStack) -> Iterator[Callable[..., Page]]:
    """Opens the dashboard of the live stack with its token in the address, in a context of its own."""
    contexts = []

    def _open(on_websocket: Callable[..., None] | None = None) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if on_websocket is not None:
            page.on("websocket", on_websocket)
        page.js_errors = errors  # type: ignore[attr-defined,unused-ignore]
        # Inline progress every 2 s (the product's is 5 s): each read is a request to the stack and the
        # simulator for every running row, and a bar that moves shows it within a few reads.
        page.goto(f"{live_stack.url}/?poll_ms=2000#token={live_stack.token}")
        return page

    try:
        yield _open
    finally:
        for context in contexts:
            context.close()


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
