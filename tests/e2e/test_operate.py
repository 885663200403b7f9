"""Operating jobs on `make run`'s stack: cancel through the API (heard on the WebSocket, kept across a restart,
the simulator's job stopped), the status history it leaves, and the installed `jobsync` command doing the same."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets

from tests.e2e.command import JOBSYNC, run_in_process
from tests.e2e.conftest import SECRET
from tests.stack_process import PATIENCE_SECONDS, LocalStack, api, fresh_source_ip, request, sync

pytestmark = pytest.mark.e2e

# The scripted training that runs for about 20 minutes at the simulator's real speed (scenarios.py).
LONG_TRAINING_CONFIG = "portrait-lora-v3"
SIMULATOR_TOKEN = "r8_jobsync_simulator"  # local/stack.py's


def simulator_view(stack: LocalStack, job_id: str) -> dict[str, Any]:
    """The job as the stack's simulator itself shows it now (its address is in the stack's log)."""
    base = re.findall(r"Replicate simulator on (\S+)", stack.log())[-1]
    answer = request("GET", f"{base}/trainings/{job_id}", headers={"Authorization": f"Bearer {SIMULATOR_TOKEN}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


# Another scripted training, queued then running for about ten minutes at real speed.
OTHER_TRAINING_CONFIG = "sdxl-subject-v2"


def command_env(stack: LocalStack, token: str | None = None) -> dict[str, str]:
    # HOME elsewhere: no config file of the machine's user plays a part. Wide columns: whole lines to read.
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(stack.state_dir),
        "COLUMNS": "200",
        "JOBSYNC_URL": stack.url,
        "JOBSYNC_TOKEN": token or stack.token,
    }


def jobsync(stack: LocalStack, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """`jobsync <args>` run in this process (tests/e2e/command.py) in the environment the installed command gets
    below; the installed command itself is run by the watch and follow tests here and by test_cli_tokens.py."""
    return run_in_process(args, command_env(stack, token))


def assert_api_jobs(stack: LocalStack, jobs: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """`jobs` are the API's job objects, newest first, as many as asked for or the API has. (The poller runs every
    3 s here, so a job may change between the command's read and ours: compared by shape and order.)"""
    reference = api(stack, "GET", "/api/cloud/jobs", params={"limit": "1"}).json()["jobs"][0]
    total = api(stack, "GET", "/api/cloud/metrics").json()["job_count"]
    assert all(job.keys() == reference.keys() for job in jobs)
    assert len(jobs) == min(limit, total) and len({job["job_id"] for job in jobs}) == len(jobs)
    stamps = [job["created_at"] for job in jobs]
    assert stamps == sorted(stamps, reverse=True)
    return jobs


class Lines:
    """A running command's output, line by line, waited on with a deadline (never a fixed sleep)."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, wanted: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"no such line within {PATIENCE_SECONDS}s; saw {self.seen}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    """A stack of this module's own (it cancels the simulator's long training), the simulator at real speed so
    that training is still running whatever the machine's load."""
    stack = LocalStack(
        tmp_path_factory.mktemp("operate-stack"),
        token="e2e-token",
        webhook_secret=SECRET,
        forked=True,
        # Polling every 3 s (each tick costs CPU while the module runs; the follow test waits a tick or two),
        # saving at the default 5 s (every stop here is a Ctrl-C, which saves).
        SIMPLETUNER_JOB_POLL_INTERVAL="3",
    )
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def long_training(stack: LocalStack) -> str:
    sync(stack)
    running = api(stack, "GET", "/api/cloud/jobs", params={"status": "running", "limit": "500"}).json()["jobs"]
    ids = [job["job_id"] for job in running if job["config_name"] == LONG_TRAINING_CONFIG]
    assert ids, running
    return ids[0]


def test_the_first_sync_with_the_command_follows_the_background_import(stack: LocalStack) -> None:
    # First in this module, on a fresh stack: the answer comes after the first pages; the rest imports in the
    # background and the command follows its sync_progress messages to the end.
    synced = jobsync(stack, "sync")
    assert synced.returncode == 0, synced.stderr
    assert re.fullmatch(r"Discovered \d+ new jobs from Replicate.* \(\d+ new, 0 updated\)\n", synced.stdout)
    imported = re.search(r"history imported: (\d+) jobs", synced.stderr)
    assert imported, synced.stderr
    total = api(stack, "GET", "/api/cloud/metrics").json()["job_count"]
    assert int(imported.group(1)) > 0 and total > 200


async def _cancel_and_hear(stack: LocalStack, job_id: str) -> tuple[int, dict, dict]:
    async with websockets.connect(
        f"{stack.ws_url}?token={stack.token}", local_addr=(fresh_source_ip(), 0), open_timeout=PATIENCE_SECONDS
    ) as socket:
        answer = await asyncio.to_thread(api, stack, "POST", f"/api/cloud/jobs/{job_id}/cancel")
        deadline = time.monotonic() + PATIENCE_SECONDS
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=deadline - time.monotonic()))
            if message.get("type") == "job_status_changed" and message.get("job_id") == job_id:
                return answer.status_code, answer.json(), message


def test_cancel_ends_the_job_everywhere_and_only_once(stack: LocalStack, long_training: str) -> None:
    status, body, heard = asyncio.run(_cancel_and_hear(stack, long_training))

    assert status == 200, body
    job = body["job"]
    assert (job["job_id"], job["status"], job["is_terminal"]) == (long_training, "cancelled", True)
    assert [step["status"] for step in job["history"]] == ["queued", "running", "cancelled"]
    stamps = [step["at"] for step in job["history"]]
    assert stamps == sorted(stamps) and all(stamp.endswith("Z") for stamp in stamps)
    assert (heard["status"], heard["previous_status"]) == ("cancelled", "running")

    again = api(stack, "POST", f"/api/cloud/jobs/{long_training}/cancel")
    assert (again.status_code, again.json()["error"]) == (409, "job_already_ended")
    unknown = api(stack, "POST", "/api/cloud/jobs/no-such-job/cancel")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "job_not_found")

    # The simulator stopped the job (its logs stop growing: tests/unit/test_replicate_simulator.py, and the
    # restart below, seconds later).
    assert simulator_view(stack, long_training)["status"] == "canceled"


def test_cancel_needs_the_operate_scope(stack: LocalStack, long_training: str) -> None:
    created = api(stack, "POST", "/api/tokens", json={"name": "e2e-reader", "scope": "read"})
    assert created.status_code == 200, created.text
    reader = created.json()["token"]
    refused = request(
        "POST", f"{stack.url}/api/cloud/jobs/{long_training}/cancel", headers={"Authorization": f"Bearer {reader}"}
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")


def test_a_cancel_survives_a_restart_of_the_stack(stack: LocalStack, long_training: str) -> None:
    before = api(stack, "GET", f"/api/cloud/jobs/{long_training}").json()["job"]
    assert before["status"] == "cancelled"
    logs_then = simulator_view(stack, long_training)["logs"]
    assert stack.stop() == 0
    stack.start()

    after = api(stack, "GET", f"/api/cloud/jobs/{long_training}").json()["job"]
    assert after["status"] == "cancelled" and after["history"] == before["history"]
    # The simulator kept the cancel too: after its restart the training is still canceled, not running again.
    now = simulator_view(stack, long_training)
    assert now["status"] == "canceled" and now["logs"] == logs_then


# ------------------------------------------------------------------------------ the installed `jobsync` command


def test_the_command_cancels_a_job_that_watch_sees_end(stack: LocalStack) -> None:
    listed = jobsync(stack, "jobs", "--limit", "500", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert_api_jobs(stack, jobs, 500)
    job_id = next(job["job_id"] for job in jobs if job["config_name"] == OTHER_TRAINING_CONFIG)

    watch = subprocess.Popen(
        [str(JOBSYNC), "watch", "--limit", "50"],
        env=command_env(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        Lines(watch.stderr).wait_for(lambda line: line.startswith("watching ws://"))
        table = Lines(watch.stdout)
        table.wait_for(lambda line: line.split()[:1] == ["STATUS"])

        cancelled = jobsync(stack, "cancel", job_id)
        assert (cancelled.returncode, cancelled.stderr) == (0, f"cancelled job {job_id}\n")
        heard = table.wait_for(lambda line: job_id in line and "→ cancelled" in line)
        moment, heard_id, previous, arrow, status, *_ = heard.split()
        assert (heard_id, previous, arrow, status) == (job_id, previous, "→", "cancelled")
        assert previous in ("queued", "running") and re.fullmatch(r"\d\d:\d\d:\d\d", moment)
    finally:
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=PATIENCE_SECONDS) == 0

    again = jobsync(stack, "cancel", job_id)
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == f"jobsync: 409: job '{job_id}' has already ended (cancelled); there is nothing to cancel\n"

    shown = jobsync(stack, "show", job_id)
    assert shown.returncode == 0, shown.stderr
    history = shown.stdout[shown.stdout.index("\nhistory") :].splitlines()[3:]
    assert [line.split()[0] for line in history][-1] == "cancelled"


def test_the_command_lists_shows_logs_and_counts_what_the_api_has(stack: LocalStack) -> None:
    paged = jobsync(stack, "jobs", "--limit", "150", "--json")
    assert paged.returncode == 0, paged.stderr
    assert len(assert_api_jobs(stack, json.loads(paged.stdout), 150)) == 150  # 100 and 50, with the cursor

    table = jobsync(stack, "jobs", "--status", "cancelled", "--limit", "5")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["STATUS", "MODEL", "JOB", "ID"] and 0 < len(rows) <= 5
    assert all(row.split()[0] == "cancelled" for row in rows)

    long_id = next(job["job_id"] for job in json.loads(paged.stdout) if job["config_name"] == LONG_TRAINING_CONFIG)
    logs = jobsync(stack, "logs", long_id, "--tail", "5")
    assert logs.returncode == 0, logs.stderr
    kept = api(stack, "GET", f"/api/cloud/jobs/{long_id}/logs", params={"tail": "5"}).json()["lines"]
    assert logs.stdout.splitlines() == kept and 0 < len(kept) <= 5

    before = api(stack, "GET", "/api/cloud/metrics").json()
    metrics = json.loads(jobsync(stack, "metrics", "--json").stdout)
    after = api(stack, "GET", "/api/cloud/metrics").json()
    assert metrics.keys() == after.keys() and before["job_count"] <= metrics["job_count"] <= after["job_count"]
    counted = jobsync(stack, "metrics")
    assert "total cost" in counted.stdout and counted.returncode == 0

    synced = jobsync(stack, "sync", "--wait", "0")
    assert synced.returncode == 0, synced.stderr
    assert re.fullmatch(r"Discovered \d+ new jobs from Replicate.* \(\d+ new, \d+ updated\)\n", synced.stdout)


def test_the_command_follows_a_running_jobs_log(stack: LocalStack) -> None:
    running = api(stack, "GET", "/api/cloud/jobs", params={"status": "running", "limit": "500"}).json()["jobs"]
    if not running:
        pytest.skip("no training is running on this stack any more")  # every scripted one ended: a very slow run
    job_id = running[0]["job_id"]
    follow = subprocess.Popen(
        [str(JOBSYNC), "logs", job_id, "--tail", "1", "--follow"],
        env=command_env(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(follow.stdout)
        first = lines.wait_for(lambda line: bool(line.strip()))
        # The poller reads the running job's logs every 3 s on this stack: new lines are pushed to the follower.
        lines.wait_for(lambda line: bool(line.strip()) and line != first)
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(timeout=PATIENCE_SECONDS) == 0
    assert "Traceback" not in (follow.stderr.read() if follow.stderr else "")
