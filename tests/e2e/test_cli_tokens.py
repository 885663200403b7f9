"""The `jobsync` command against make run's stack: a token created, used within its scope, listed and revoked (the
command run in the test's process), and its failures as one line each (the installed command, as a process)."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.e2e.command import JOBSYNC, run_in_process
from tests.stack_process import REQUEST_SECONDS, LocalStack, free_port, request

pytestmark = pytest.mark.e2e


def command_env(stack_url: str, token: str | None) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "JOBSYNC_URL": stack_url, **({"JOBSYNC_TOKEN": token} if token else {})}


def jobsync(stack_url: str, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, as a process."""
    assert JOBSYNC.exists(), f"{JOBSYNC} is missing: make install puts it there (pip install -e .)"
    return subprocess.run(
        [str(JOBSYNC), *args],
        env=command_env(stack_url, token),
        capture_output=True,
        text=True,
        timeout=REQUEST_SECONDS,
        check=False,
    )


def jobsync_in_process(stack_url: str, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command in the same environment, run in this process (tests/e2e/command.py): a process costs 0.4 s
    of CPU, and what the test below checks is the command's work, not how it is installed."""
    return run_in_process(args, command_env(stack_url, token))


def get(stack: LocalStack, path: str, token: str, method: str = "GET") -> httpx.Response:
    return request(method, f"{stack.url}{path}", headers={"Authorization": f"Bearer {token}"})


def test_a_token_created_used_and_revoked_with_the_command(shared_stack: LocalStack) -> None:
    created = jobsync_in_process(
        shared_stack.url, shared_stack.token, "token", "create", "--name", "e2e-cli", "--scope", "read"
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("jst_") and "\n" not in token and "shown this once" in created.stderr
    token_id = token.split("_")[1]

    assert get(shared_stack, "/api/cloud/metrics", token).status_code == 200
    refused = get(shared_stack, "/api/cloud/jobs/sync", token, method="POST")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"

    listed = jobsync_in_process(shared_stack.url, shared_stack.token, "token", "list")
    assert listed.returncode == 0 and token_id in listed.stdout and "e2e-cli" in listed.stdout
    assert token not in listed.stdout

    # A read token may not manage tokens: one line with the status and the scope it lacks.
    too_small = jobsync_in_process(shared_stack.url, token, "token", "list")
    assert too_small.returncode == 1 and too_small.stdout == ""
    assert too_small.stderr.strip().splitlines() == [
        "jobsync: 403: GET /api/tokens needs a token with the 'admin' scope; this token has 'read'"
    ]

    revoked = jobsync_in_process(shared_stack.url, shared_stack.token, "token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    # The local stack is one process: the instance that revoked is the one that checks, so at once.
    assert get(shared_stack, "/api/cloud/metrics", token).status_code == 401
    assert token_id not in jobsync_in_process(shared_stack.url, shared_stack.token, "token", "list").stdout


def test_the_command_says_what_to_fix(shared_stack: LocalStack) -> None:
    no_token = jobsync(shared_stack.url, None, "token", "list")
    assert no_token.returncode == 2 and no_token.stderr.startswith("jobsync: JOBSYNC_TOKEN is not set")

    refused = jobsync(shared_stack.url, "not-a-token", "token", "list")
    assert (refused.returncode, refused.stderr) == (1, "jobsync: 401: the API refused the token: check JOBSYNC_TOKEN\n")

    nobody = f"http://127.0.0.1:{free_port()}"
    unreachable = jobsync(nobody, shared_stack.token, "token", "list")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(f"jobsync: cannot reach {nobody}: is make run up?")
    for result in (no_token, refused, unreachable):
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
