"""With REPLICATE_API_TOKEN set the stack talks to REPLICATE_API_BASE_URL, not its simulator;
without JOBSYNC_API_TOKEN it makes up a token and prints it."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.stack_process import ROOT, LocalStack, free_port

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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/account", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, provider):
    stack = LocalStack(
        tmp_path_factory.mktemp("provider-stack"),
        token="",
        webhook_secret="",
        REPLICATE_API_TOKEN="r8_e2e_custom",
        REPLICATE_API_BASE_URL=provider,
    )
    stack.start()
    printed = re.search(r"token\s+(\S+)\s+\(generated", stack.log())
    assert printed, stack.log()
    stack.token = printed.group(1)
    yield stack
    stack.stop()


def test_the_generated_token_is_printed_and_accepted(stack):
    assert len(stack.token) >= 24
    assert httpx.get(f"{stack.url}/api/cloud/metrics", headers=stack.headers()).status_code == 200
    assert httpx.get(f"{stack.url}/api/cloud/metrics", headers={"Authorization": "Bearer x"}).status_code == 401


def test_the_configured_provider_is_used(stack, provider):
    assert f"provider    {provider}" in stack.log()
    answer = httpx.get(f"{stack.url}/api/cloud/replicate/validate", headers=stack.headers(), timeout=30).json()
    assert answer == {"valid": True, "username": "jobsync-simulator", "error": None}
    synced = httpx.post(f"{stack.url}/api/cloud/jobs/sync", headers=stack.headers(), timeout=60).json()["synced"]
    assert synced > 200
    assert "r8_e2e_custom" not in stack.log()
