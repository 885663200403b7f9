"""What the live browser tests (test_live_*.py) share: the local stack's settings and a patient wait.

They run against one real local stack per test process (tests/browser/conftest.py's `live_stack`), so each
module names the jobs it makes (`browser-…`), leaves the settings as it found them, and does not assume it
is the first to sync.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from playwright.sync_api import Page

TOKEN = "browser-live-token"
SECRET = "whsec_" + base64.b64encode(b"browser-live-webhook-secret-32b!").decode()
# The prefix of every job a live browser test makes itself (by webhook): not one of the simulator's.
OWN_JOB_PREFIX = "browser-"
ROWS = '[data-testid="job-row"]'
# How long an expectation waits for the stack. A busy machine has taken tens of seconds for what takes
# one here; a passing wait ends as soon as the page shows what it should, so this costs nothing.
SERVER_WAIT_MS = 60_000


def eventually(
    page: Page, check: Callable[[], object], message: str = "", timeout: float = SERVER_WAIT_MS / 1000
) -> object:
    """Retry `check` (falsy or AssertionError = not yet) while letting Playwright deliver its events."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            problem = message or "condition not met in time"
        except AssertionError as exc:
            problem = f"{message}: {exc}" if message else str(exc)
        if time.monotonic() > deadline:
            raise AssertionError(problem)
        page.wait_for_timeout(100)
