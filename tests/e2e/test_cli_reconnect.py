"""The installed `jobsync logs --follow` across a restart of the local stack: it says it lost the WebSocket,
connects again, prints the lines that came while it was away (read from the logs route, no line twice) and
then the lines pushed to its follow, which it sent again on the new connection."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO

import pytest

from tests.e2e.conftest import SECRET
from tests.stack_process import PATIENCE_SECONDS, LocalStack, send_signed_webhook

pytestmark = pytest.mark.e2e

JOBSYNC = Path(sys.executable).parent / "jobsync"


class Output:
    """A running command's stream, line by line, waited on with a deadline (never a fixed sleep)."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def wait_for(self, wanted: str) -> None:
        """Until a line that starts with `wanted` has come."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not any(line.startswith(wanted) for line in self.seen):
            try:
                self.seen.append(self._lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no line {wanted!r} within {PATIENCE_SECONDS} s; saw {self.seen}") from None

    def rest(self) -> list[str]:
        """Every line, once the command has ended (its stream then closes)."""
        self._reader.join(timeout=PATIENCE_SECONDS)
        while not self._lines.empty():
            self.seen.append(self._lines.get())
        return self.seen


def training_logs(stack: LocalStack, job_id: str, lines: int) -> None:
    """Replicate's signed webhook for a running training whose log now has `lines` lines."""
    payload: dict[str, object] = {
        "id": job_id,
        "model": "e2e/reconnect-trainer",
        "status": "processing",
        "created_at": "2026-11-30T10:00:00Z",
        "started_at": "2026-11-30T10:00:05Z",
        "completed_at": None,
        "metrics": {},
        "logs": "\n".join(f"line {n}" for n in range(1, lines + 1)),
        "error": None,
        "output": None,
    }
    answer = send_signed_webhook(stack.url, SECRET, payload, f"msg_{uuid.uuid4().hex}")
    assert answer.status_code == 200, answer.text


def test_logs_follow_connects_again_after_a_restart_and_prints_every_line_once(own_stack: LocalStack) -> None:
    stack = own_stack
    job_id = "e2ereconnect" + uuid.uuid4().hex[:12]
    training_logs(stack, job_id, 2)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(stack.state_dir),  # no config file of the machine's user plays a part
        "JOBSYNC_URL": stack.url,
        "JOBSYNC_TOKEN": stack.token,
    }
    command = subprocess.Popen(
        [str(JOBSYNC), "logs", job_id, "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert command.stdout is not None and command.stderr is not None
    printed, told = Output(command.stdout), Output(command.stderr)
    try:
        printed.wait_for("line 2")
        training_logs(stack, job_id, 3)  # pushed to the follower
        printed.wait_for("line 3")

        assert stack.stop() == 0
        told.wait_for("lost the WebSocket")
        # Held still while the stack comes back and more lines arrive, so that nobody follows the job then: these
        # lines reach the command only through its read of the logs route once it is connected again.
        os.kill(command.pid, signal.SIGSTOP)
        try:
            stack.start()
            training_logs(stack, job_id, 5)
        finally:
            os.kill(command.pid, signal.SIGCONT)
        told.wait_for("connected again")
        printed.wait_for("line 5")

        training_logs(stack, job_id, 6)  # pushed: the command sent its follow again on the new connection
        printed.wait_for("line 6")
    finally:
        command.send_signal(signal.SIGINT)
        exit_code = command.wait(timeout=PATIENCE_SECONDS)

    assert exit_code == 0
    assert printed.rest() == [f"line {n}" for n in range(1, 7)]  # every line, each once, in order
    stderr = told.rest()
    assert [line.split(" (")[0] for line in stderr if line.startswith("lost")] == [f"lost the WebSocket {stack.ws_url}"]
    assert len([line for line in stderr if line.startswith(f"connected again to {stack.ws_url} after ")]) == 1
    assert not [line for line in stderr if line.startswith("jobsync:") or "Traceback" in line], stderr
