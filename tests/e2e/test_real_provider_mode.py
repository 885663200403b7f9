"""With REPLICATE_API_TOKEN set the stack talks to REPLICATE_API_BASE_URL, not its simulator, and keeps
that endpoint's jobs apart from the simulator's; without JOBSYNC_API_TOKEN it makes up a token, prints it
and keeps it for the next start."""

from __future__ import annotations

import hashlib
import stat
import subprocess
import sys
import time

import httpx
import pytest

from tests.stack_process import PATIENCE_SECONDS, ROOT, LocalStack, api, free_port, request, sync, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def provider():
    """A stand-in for api.replicate.com: the simulator run on its own, with its own token."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.replicate_simulator",
            "--port",
            str(port),
            "--token",
            "r8_e2e_custom",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}/layers/jobsync", "PATH": "/usr/bin:/bin"},
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        try:
            request("GET", f"{url}/account", timeout=1)
            break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the simulator did not answer on {url} (exit code {process.poll()})")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=PATIENCE_SECONDS)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, provider):
    stack = LocalStack(
        tmp_path_factory.mktemp("provider-stack"),
        token="",
        webhook_secret="",
        forked=True,
        REPLICATE_API_TOKEN="r8_e2e_custom",
        REPLICATE_API_BASE_URL=provider,
        JOBSYNC_SYNC_CAP="100",  # a sync reads a page of each list: enough to show whose jobs they are
    )
    stack.start()  # no JOBSYNC_API_TOKEN: `stack.token` is the one the stack generated and printed
    yield stack
    stack.stop()


def replicate_folder(url: str) -> str:
    return f"replicate-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def get(url: str, **kwargs) -> httpx.Response:
    return request("GET", url, **kwargs)


def test_the_generated_token_is_printed_and_accepted(stack):
    assert len(stack.token) >= 24
    assert get(f"{stack.url}/api/cloud/metrics", headers=stack.headers()).status_code == 200
    assert get(f"{stack.url}/api/cloud/metrics", headers={"Authorization": "Bearer x"}).status_code == 401


def test_the_configured_provider_is_used(stack, provider):
    assert f"provider    {provider}" in stack.log()
    answer = api(stack, "GET", "/api/cloud/replicate/validate").json()
    assert answer == {"valid": True, "username": "jobsync-simulator", "error": None}
    assert sync(stack)["synced"] > 0
    assert "r8_e2e_custom" not in stack.log()


def test_a_configured_token_wins_over_the_kept_one_and_a_restart_without_one_keeps_the_generated_one(stack):
    """One stop and two starts (each start costs CPU): with a configured token, which wins and is not saved, then
    without one, which brings back the generated token the first start kept."""
    token_file = stack.state_dir / "api-token"
    generated = stack.token
    assert token_file.read_text().strip() == generated
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert f"(generated and kept in {token_file};" in stack.log()

    assert stack.stop() == 0
    stack.configured_token = "e2e-chosen-token"
    try:
        stack.start()
        assert stack.token == "e2e-chosen-token"
        assert api(stack, "GET", "/api/cloud/metrics").status_code == 200
        refused = get(f"{stack.url}/api/cloud/metrics", headers={"Authorization": f"Bearer {generated}"})
        assert refused.status_code == 401
        assert token_file.read_text().strip() == generated
    finally:
        stopped = stack.stop()
        stack.configured_token = stack.token = ""  # back to the kept token (and for the fixture's teardown)
        stack.start()
    assert stopped == 0

    assert stack.token == generated
    assert stack.log().count(f"token       {generated}  (generated earlier, kept in {token_file};") == 1
    assert api(stack, "GET", "/api/cloud/metrics").status_code == 200


def test_each_provider_endpoint_keeps_its_own_jobs(tmp_path, provider):
    """The simulator's jobs never reach a stack that talks to another endpoint, nor its poller."""
    simulated = LocalStack(
        tmp_path,
        token="e2e-switch",
        webhook_secret="",
        forked=True,
        JOBSYNC_SIMULATOR_SPEED="10",
        JOBSYNC_SNAPSHOT_SECONDS="1",
        JOBSYNC_SYNC_CAP="100",  # the trainings (the active jobs among them) and a page of predictions
    )
    simulated.start()
    try:
        assert sync(simulated)["synced"] > 0
        before = {job["job_id"]: job for job in api(simulated, "GET", "/api/cloud/jobs?limit=500").json()["jobs"]}
        assert any(job["is_active"] for job in before.values())
    finally:
        assert simulated.stop() == 0
    assert f"state       {tmp_path / 'simulator'}" in simulated.log()
    assert (tmp_path / "simulator" / "dynamodb.json").exists()

    other = LocalStack(
        tmp_path,
        token="e2e-switch",
        webhook_secret="",
        forked=True,
        REPLICATE_API_TOKEN="r8_e2e_custom",
        REPLICATE_API_BASE_URL=provider,
        SIMPLETUNER_JOB_POLL_INTERVAL="1",
    )
    other.start()
    try:
        assert api(other, "GET", "/api/cloud/metrics").json()["job_count"] == 0
        # Its poller ticks (each second here): none of them may touch the simulator's jobs.
        wait_until(
            lambda: api(other, "GET", "/api/cloud/polling/status").json()["last_tick"]["at"] is not None,
            "the poller's first tick",
        )
        assert api(other, "GET", "/api/cloud/jobs").json()["jobs"] == []
    finally:
        assert other.stop() == 0
    assert f"state       {tmp_path / replicate_folder(provider)}" in other.log()
    assert (tmp_path / replicate_folder(provider) / "dynamodb.json").exists()

    simulated.start()
    try:
        after = {job["job_id"]: job for job in api(simulated, "GET", "/api/cloud/jobs?limit=500").json()["jobs"]}
    finally:
        simulated.stop()
    assert before.keys() <= after.keys()
    lost = [job for job in after.values() if "no longer knows" in (job["error_message"] or "")]
    assert not lost, lost
