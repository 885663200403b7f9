"""Runs `make run`'s stack (python -m local.stack) as a subprocess for end-to-end and browser tests."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from tests.stack_forks import ForkedProcess, Zygote

ROOT = Path(__file__).resolve().parents[1]
# How long a test waits for something the stack does by itself (a start, a stop, a pushed message).
# Generous: waiting costs only when something is wrong, and a loaded machine is slow, not broken.
PATIENCE_SECONDS = 120.0
# A sync request: the function's 29 s (template.yaml) and whatever a loaded machine adds around it.
REQUEST_SECONDS = 120.0


# One client for every request the tests make: httpx.get/httpx.request build a client, and with it an SSL
# context that loads the CA bundle, on every call (about 40 ms of CPU each, hundreds of calls a run). No
# connection is kept alive: a stack restarts on the same port, and a pooled connection to the one that
# stopped would fail the first request to the next.
HTTP = httpx.Client(timeout=REQUEST_SECONDS, limits=httpx.Limits(max_keepalive_connections=0))


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """An HTTP request through the tests' one client (see HTTP); `timeout` as httpx's, REQUEST_SECONDS by default."""
    return HTTP.request(method, url, **kwargs)


def wait_until(condition: Callable[[], Any], what: str, patience: float = PATIENCE_SECONDS) -> Any:
    """`condition()`'s first true value, asked at once and then less and less often (0.1 s, growing to 1 s).

    A wait for something the stack does by itself; each question costs the stack (and this process) a request,
    and a long wait need not ask five times a second.
    """
    deadline = time.monotonic() + patience
    pause = 0.1
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {patience:.0f} s for {what}")
        time.sleep(pause)
        pause = min(1.0, pause * 1.5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalStack:
    def __init__(self, state_dir: Path, token: str, webhook_secret: str, forked: bool = False, **env: str) -> None:
        self.state_dir = state_dir
        # Forked: each start is `local.stack.main` forked from a process that imported its modules once
        # (tests/stack_forks.py: about half a start's CPU); else the command `python -m local.stack` itself.
        self.forked = forked
        # The JOBSYNC_API_TOKEN each start is given; empty: the stack generates one (or reuses the one it
        # kept), and `token` becomes the one its banner prints.
        self.configured_token = token
        self.token = token
        self.webhook_secret = webhook_secret
        self.port = free_port()
        self.extra_env = env
        self.process: subprocess.Popen[str] | ForkedProcess | None = None
        self.log_path = state_dir / "stack.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/live"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout: float = PATIENCE_SECONDS) -> None:
        inherited = {
            key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "REPLICATE_", "JOBSYNC_"))
        }
        env = {
            **inherited,
            "JOBSYNC_PORT": str(self.port),
            "JOBSYNC_API_TOKEN": self.configured_token,
            "JOBSYNC_STATE_DIR": str(self.state_dir),
            "REPLICATE_WEBHOOK_SECRET": self.webhook_secret,
            **self.extra_env,
        }
        started_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        if self.forked:
            self.process = Zygote.shared(inherited).fork(env, self.log_path)
        else:
            with self.log_path.open("a") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "local.stack"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
        deadline = time.monotonic() + timeout
        pause = 0.1  # growing to 0.5 s: a start takes seconds, and each refused probe costs a little
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the stack exited with {self.process.returncode}:\n{self.log()}")
            try:
                if request("GET", f"{self.url}/api/health", timeout=1).status_code == 200:
                    self.token = self.configured_token or self._printed_token(started_at)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(pause)
            pause = min(0.5, pause * 1.5)
        self.stop()
        raise RuntimeError(f"the stack did not become healthy in {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = PATIENCE_SECONDS) -> int:
        """Ctrl-C, as a user would; returns the exit code."""
        if self.process is None:
            return 0
        ended = self.process.poll()
        if ended is not None:
            return ended
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def _printed_token(self, since: int) -> str:
        """The generated token in the banner of the start whose log begins at `since`."""
        with self.log_path.open() as stream:
            stream.seek(since)
            printed = re.search(r"^  token\s+(\S+)\s+\(generated", stream.read(), re.MULTILINE)
        if printed is None:
            raise RuntimeError(f"the stack printed no generated token:\n{self.log()}")
        return printed.group(1)


def api(stack: LocalStack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request to the stack's HTTP API with its token."""
    return request(method, f"{stack.url}{path}", headers=stack.headers(), **kwargs)


def sync(stack: LocalStack) -> dict[str, Any]:
    """POST /api/cloud/jobs/sync's answer.

    A sync short of time answers with what it stored (or, when a provider request could not be
    started in time, 502): on a loaded machine that is the contract, not a failure, and the
    next sync goes on, so a 502 that says so is tried again.
    """
    for _ in range(10):
        answer = api(stack, "POST", "/api/cloud/jobs/sync")
        body = answer.json()
        if answer.status_code == 502 and "time" in body.get("message", ""):
            continue
        assert answer.status_code == 200, body
        return dict(body)
    raise AssertionError(f"every sync ran out of time: {body}")


def sync_until_quiet(stack: LocalStack, patience: float = PATIENCE_SECONDS) -> list[int]:
    """Press Sync, then wait until the background history import it started has reached the end of the
    provider's lists; the `synced` counts of the answers (the jobs each sync stored itself).

    The wait asks again with further syncs, after half a second and then less often (up to every 2 s: a
    sync reads the provider's newest pages, work for the stack): a sync during an import starts no
    second one and answers `history_complete: false` until it is done; a sync after an import that
    paused (a provider fault) starts it again. However slow the machine, the provider's whole history
    is in once this returns.
    """
    found: list[int] = []
    deadline = time.monotonic() + patience
    pause = 0.5
    while True:
        answer = sync(stack)
        found.append(answer["synced"])
        if answer["history_complete"]:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"the history import did not finish in {patience} s: {found}")
        time.sleep(pause)
        pause = min(2.0, pause * 1.5)


_addresses = itertools.count(2)


def fresh_source_ip() -> str:
    """A loopback address no other socket of this test process connects from.

    The stack caps WebSocket connections per source IP, and a closed socket frees its slot only
    once its $disconnect has run: a test that opens several from its own address never meets
    another test's sockets.
    """
    number = next(_addresses)
    return f"127.0.{number // 250}.{number % 250 + 2}"


def send_signed_webhook(base_url: str, secret: str, payload: dict[str, Any], webhook_id: str) -> httpx.Response:
    """POST a Replicate webhook signed by the official `standardwebhooks` package, as Replicate signs it."""
    from standardwebhooks.webhooks import Webhook

    body = json.dumps(payload)
    moment = datetime.now(timezone.utc)
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, moment, body),
    }
    return request("POST", f"{base_url}/api/webhooks/replicate", content=body, headers=headers)
