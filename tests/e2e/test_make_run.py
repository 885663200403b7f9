"""`make run` as its user meets it: what the terminal shows, where metrics go, a restart, and Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from local.template import functions, load_template
from tests.stack_process import LocalStack, api, sync_until_quiet

pytestmark = pytest.mark.e2e

# The CPU time a Ctrl-C may cost the stack: measured 0.04-0.06 s with 250 jobs stored on a quiet machine,
# 0.35 s at a load average of 20 (CPU time stretches too, less than wall time); a stop that waits on a
# spinning thread or tears down a large store costs seconds. (Skipping the interpreter's teardown saves
# about 0.7 s here, which this bound does not tell apart under load: the log lines below say the stop ran.)
STOP_CPU_SECONDS = 1.5
# A generous bound on the wall time of that stop: a loaded machine is slow, not broken.
STOP_WAIT_SECONDS = 60.0


def cpu_seconds(pid: int) -> float:
    """The user and system time a running process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ctrl_c(stack: LocalStack) -> tuple[int, float]:
    """Stops the stack with Ctrl-C; its exit code and the CPU time it used from the signal to its exit."""
    process = stack.process
    assert process is not None and process.poll() is None
    before = cpu_seconds(process.pid)
    process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while True:  # wait4 without blocking: the exit status and the child's whole CPU time, in one call
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        assert time.monotonic() < deadline, f"Ctrl-C did not stop the stack in {STOP_WAIT_SECONDS} s"
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime - before


def test_a_session_a_restart_and_ctrl_c(tmp_path):
    stack = LocalStack(tmp_path, token="", webhook_secret="", JOBSYNC_SIMULATOR_SPEED="10")
    stack.start()
    try:
        first = stack.log()
        # Startup says what it is doing, then the banner gives the token as a line to paste.
        handlers = {(spec.code_uri, spec.handler) for spec in functions(load_template()).values()}
        loading = f"loading the {len(handlers)} functions"
        for step in ("starting moto's DynamoDB", "starting the Replicate simulator", loading):
            assert f"local.stack INFO {step}" in first
        assert re.search(rf"^  export TOKEN={re.escape(stack.token)}$", first, re.MULTILINE)
        assert "press Sync" in first

        sync_until_quiet(stack)  # the first pages, then the rest of the history imported in the background
        synced = api(stack, "GET", "/api/cloud/metrics").json()["job_count"]
        assert synced >= 100  # a stack holding hundreds of items, which its Ctrl-C writes to a snapshot
        exit_code, stop_cpu = ctrl_c(stack)
        print(f"Ctrl-C: exit {exit_code}, {stop_cpu:.2f} s of the stack's CPU")
    finally:
        stack.stop()
    # Ctrl-C is prompt: what it does is bounded work (the snapshot written, the interpreter's teardown
    # skipped), measured in the stack's own CPU time, which a loaded machine does not stretch as it does
    # wall time.
    assert exit_code == 0
    assert stop_cpu < STOP_CPU_SECONDS, f"Ctrl-C cost the stack {stop_cpu:.2f} s of CPU"
    log = stack.log()
    saved = re.search(r"local\.stack INFO saved (\d+) items to ", log[log.rindex("local.stack INFO stopping") :])
    assert saved is not None and int(saved.group(1)) >= synced, log[-2000:]

    # The functions' CloudWatch metric lines went to the state folder, none to the terminal.
    assert '"_aws"' not in log
    metrics = (tmp_path / "simulator" / "metrics.log").read_text().splitlines()
    assert metrics and all("_aws" in json.loads(line) for line in metrics)
    assert any("JobsDiscovered" in json.loads(line) for line in metrics)

    stack.start()
    try:
        again = stack.log()[len(log) :]
        stored = re.search(r"^(\d+) jobs stored from earlier runs; the poller keeps them current\.$", again, re.M)
        assert stored is not None and int(stored.group(1)) >= synced
        assert "press Sync" not in again
        assert f"export TOKEN={stack.token}" in again
    finally:
        assert stack.stop() == 0
