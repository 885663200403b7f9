"""The local stack: its settings (one state folder per provider endpoint, a generated token that is kept),
what stops a start, the banner, the provider check, EMF metric lines and what it does when idle."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from local.lambda_runtime import MetricLinesToFile, metric_lines_to
from local.stack import (
    ROOT,
    TOKEN_FILE,
    VARIABLES,
    Background,
    LocalSettings,
    ProviderCheck,
    StartError,
    _banner,
    check_provider,
    provider_state_dir,
)

ENVIRONMENT = tuple(name for name, _ in VARIABLES)


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOBSYNC_STATE_DIR", str(tmp_path))
    return monkeypatch


def digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def test_the_simulator_and_each_replicate_endpoint_have_their_own_folder(env, tmp_path):
    assert LocalSettings.from_env().state_dir == tmp_path / "simulator"

    env.setenv("REPLICATE_API_TOKEN", "r8_x")
    default = LocalSettings.from_env()
    assert default.state_dir == tmp_path / f"replicate-{digest('https://api.replicate.com/v1')}"
    assert default.state_root == tmp_path

    env.setenv("REPLICATE_API_BASE_URL", "http://127.0.0.1:9999/v1/")
    other = LocalSettings.from_env()
    assert other.state_dir == tmp_path / f"replicate-{digest('http://127.0.0.1:9999/v1')}"
    assert len({LocalSettings.from_env().state_dir, default.state_dir, tmp_path / "simulator"}) == 3


def test_the_folder_depends_on_the_endpoint_not_on_the_token(tmp_path):
    url = "https://api.replicate.com/v1"
    assert provider_state_dir(tmp_path, "r8_a", url) == provider_state_dir(tmp_path, "r8_b", None)
    assert provider_state_dir(tmp_path, None, url) == tmp_path / "simulator"


def test_a_generated_token_is_kept_private_and_reused(env, tmp_path):
    first = LocalSettings.from_env()
    path = tmp_path / TOKEN_FILE
    assert first.token_origin == "generated" and len(first.api_token) >= 24
    assert path.read_text().strip() == first.api_token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [name for name in tmp_path.iterdir() if name.name.startswith(".api-token-")]

    again = LocalSettings.from_env()
    assert (again.api_token, again.token_origin) == (first.api_token, "kept")

    # The token belongs to the dashboard, not to a provider: switching provider keeps it too.
    env.setenv("REPLICATE_API_TOKEN", "r8_x")
    assert LocalSettings.from_env().api_token == first.api_token


def test_a_loosened_token_file_is_tightened_and_an_unusable_one_replaced(env, tmp_path):
    path = tmp_path / TOKEN_FILE
    path.write_text("  kept-token\n")
    path.chmod(0o644)
    assert LocalSettings.from_env().api_token == "kept-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    path.write_text("two words\n")
    replaced = LocalSettings.from_env()
    assert replaced.token_origin == "generated" and replaced.api_token != "two words"
    assert path.read_text().strip() == replaced.api_token


def test_a_configured_token_wins_and_is_not_written(env, tmp_path):
    env.setenv("JOBSYNC_API_TOKEN", "chosen")
    settings = LocalSettings.from_env()
    assert (settings.api_token, settings.token_origin) == ("chosen", "environment")
    assert not (tmp_path / TOKEN_FILE).exists()

    (tmp_path / TOKEN_FILE).write_text("kept-token\n")
    assert LocalSettings.from_env().api_token == "chosen"
    assert (tmp_path / TOKEN_FILE).read_text() == "kept-token\n"


def test_the_banner_names_the_state_folder_and_where_the_token_is_kept(env, tmp_path):
    generated = _banner(LocalSettings.from_env(), True, "live")
    assert f"state       {tmp_path / 'simulator'}" in generated
    assert f"(generated and kept in {tmp_path / TOKEN_FILE};" in generated
    kept = _banner(LocalSettings.from_env(), True, "live")
    assert f"(generated earlier, kept in {tmp_path / TOKEN_FILE};" in kept

    env.setenv("JOBSYNC_API_TOKEN", "chosen")
    chosen = _banner(LocalSettings.from_env(), True, "live")
    assert "token       chosen\n" in chosen and "(generated" not in chosen


# ---- starting: --help, and the variables that stop a start ------------------------------------------


def run_stack(env_overrides: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m local.stack` as `make run` starts it, for the paths that end before the stack is up."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "REPLICATE_", "JOBSYNC_"))}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "local.stack", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_the_options_and_variables_and_starts_nothing(tmp_path):
    done = run_stack({"JOBSYNC_STATE_DIR": str(tmp_path)}, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m local.stack")
    for name, _ in VARIABLES:
        assert re.search(rf"^  {name}\s+\S", done.stdout, re.MULTILINE), name
    assert "jobsync is up" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1", "80.5"])
def test_a_bad_port_variable_is_one_line_naming_it(tmp_path, value):
    done = run_stack({"JOBSYNC_STATE_DIR": str(tmp_path), "JOBSYNC_PORT": value})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"jobsync: JOBSYNC_PORT={value} is not a port number (1-65535): set it to a free port, e.g. 8001"
    ]
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # stopped before anything was written


def test_a_port_in_use_is_one_line_naming_the_variable_and_the_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_stack({"JOBSYNC_STATE_DIR": str(tmp_path), "JOBSYNC_PORT": str(port)})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"jobsync: port {port} is in use (JOBSYNC_PORT={port}): stop what listens there "
        f"or choose another port, e.g. JOBSYNC_PORT={port + 1} make run"
    ]
    assert list(tmp_path.iterdir()) == []


def test_other_numeric_variables_are_checked_before_anything_starts(env, tmp_path):
    env.setenv("JOBSYNC_SIMULATOR_SPEED", "fast")
    with pytest.raises(StartError, match=r"^JOBSYNC_SIMULATOR_SPEED=fast is not a number above 0$"):
        LocalSettings.from_env()
    env.setenv("JOBSYNC_SIMULATOR_SPEED", "10")
    env.setenv("JOBSYNC_SNAPSHOT_SECONDS", "0")
    with pytest.raises(StartError, match="JOBSYNC_SNAPSHOT_SECONDS=0"):
        LocalSettings.from_env()
    assert list(tmp_path.iterdir()) == []


# ---- the banner ---------------------------------------------------------------------------------------


def test_the_banner_has_a_copy_pasteable_export_line_and_keeps_the_token_line(env, tmp_path):
    settings = LocalSettings.from_env()
    banner = _banner(settings, True, "live")
    assert f"  export TOKEN={settings.api_token}\n" in banner
    assert (
        f'curl -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:{settings.port}/api/cloud/jobs/sync' in banner
    )
    # tests/stack_process.py reads the generated token from this line.
    printed = re.search(r"^  token\s+(\S+)\s+\(generated", banner, re.MULTILINE)
    assert printed is not None and printed.group(1) == settings.api_token

    env.setenv("JOBSYNC_API_TOKEN", "it's $mine")
    chosen = _banner(LocalSettings.from_env(), True, "live")
    exported = re.search(r"^  export (.+)$", chosen, re.MULTILINE).group(1)
    assert shlex.split(exported) == ["TOKEN=it's $mine"]


def test_the_banner_says_how_many_jobs_are_stored_instead_of_asking_for_a_sync(env):
    settings = LocalSettings.from_env()
    first = _banner(settings, True, "live", jobs=0)
    assert "press Sync" in first and "stored" not in first
    again = _banner(settings, True, "live", jobs=236)
    assert "236 jobs stored from earlier runs; the poller keeps them current." in again
    assert "Sync" not in again
    assert "1 job stored from earlier runs" in _banner(settings, True, "live", jobs=1)


def test_the_banner_names_the_account_or_the_problem(env):
    env.setenv("REPLICATE_API_TOKEN", "r8_x")
    settings = LocalSettings.from_env()
    good = _banner(settings, False, "live", provider=ProviderCheck(True, "account alice"))
    assert "  provider    https://api.replicate.com/v1  (account alice)\n" in good and "problem" not in good
    refused = "REPLICATE_API_TOKEN was refused by https://api.replicate.com/v1: check the token"
    bad = _banner(settings, False, "live", provider=ProviderCheck(False, refused))
    assert "  provider    https://api.replicate.com/v1\n" in bad
    assert f"  problem     {refused}\n" in bad
    assert "r8_x" not in good + bad


# ---- the provider check ---------------------------------------------------------------------------------


def answering(status: int, body: object = None, seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


def test_the_provider_check_names_the_account():
    seen: list[httpx.Request] = []
    check = check_provider("https://api.replicate.com/v1/", "r8_x", transport=answering(200, {"username": "a"}, seen))
    assert check == ProviderCheck(True, "account a")
    assert [(request.method, str(request.url)) for request in seen] == [("GET", "https://api.replicate.com/v1/account")]
    assert seen[0].headers["authorization"] == "Bearer r8_x"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_names_the_token_variable(status):
    check = check_provider("https://api.replicate.com/v1", "r8_x", transport=answering(status, {"detail": "no"}))
    assert check == ProviderCheck(
        False, "REPLICATE_API_TOKEN was refused by https://api.replicate.com/v1: check the token"
    )


def test_an_unreachable_base_url_names_the_url_variable():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    assert check_provider(url, "r8_x", timeout=2) == ProviderCheck(
        False, f"cannot reach {url}: check REPLICATE_API_BASE_URL"
    )

    def too_slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    slow = check_provider("https://replicate.invalid/v1", "r8_x", transport=httpx.MockTransport(too_slow))
    assert slow == ProviderCheck(False, "cannot reach https://replicate.invalid/v1: check REPLICATE_API_BASE_URL")


def test_an_endpoint_that_is_not_replicate_or_is_down_is_said_so():
    not_replicate = check_provider("http://example.test", "r8_x", transport=answering(404, {"detail": "?"}))
    assert not_replicate == ProviderCheck(
        False, "http://example.test answered HTTP 404 to GET /account: check REPLICATE_API_BASE_URL"
    )
    down = check_provider("http://example.test", "r8_x", transport=answering(503))
    assert down == ProviderCheck(False, "http://example.test answered HTTP 503: the poller will keep trying")


def test_the_provider_check_against_a_real_local_server():
    class Account(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's spelling
            good = self.path == "/v1/account" and self.headers["Authorization"] == "Bearer r8_good"
            body = json.dumps({"username": "local-user"} if good else {"detail": "Unauthenticated"}).encode()
            self.send_response(200 if good else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Account)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        assert check_provider(url, "r8_good") == ProviderCheck(True, "account local-user")
        assert check_provider(url, "r8_bad") == ProviderCheck(
            False, f"REPLICATE_API_TOKEN was refused by {url}: check the token"
        )
    finally:
        server.shutdown()
        server.server_close()


# ---- EMF metric lines ---------------------------------------------------------------------------------


def test_emf_metric_lines_go_to_the_file_and_everything_else_to_the_terminal(tmp_path):
    terminal = io.StringIO()
    with (tmp_path / "metrics.log").open("w") as metrics:
        router = MetricLinesToFile(terminal, metrics)
        router.write('{"_aws": {"Timestamp": 1}, "Count": [1.0]}')  # print() writes the line, then its end
        router.write("\n")
        router.write("plain line\n")
        router.write("a line in two")
        router.flush()
        router.write(' writes\n{"_aws":{"Timestamp":2}}\n')
    assert terminal.getvalue() == "plain line\na line in two writes\n"
    assert (tmp_path / "metrics.log").read_text().splitlines() == [
        '{"_aws": {"Timestamp": 1}, "Count": [1.0]}',
        '{"_aws":{"Timestamp":2}}',
    ]


def test_lines_from_many_threads_stay_whole(tmp_path):
    terminal = io.StringIO()
    with (tmp_path / "metrics.log").open("w") as metrics:
        router = MetricLinesToFile(terminal, metrics)

        def write(number: int) -> None:
            for _ in range(200):
                router.write(f'{{"_aws": {{"thread": {number}}}}}')
                router.write("\n")
                router.write(f"thread {number}")
                router.write(" says hello\n")

        threads = [threading.Thread(target=write, args=(number,)) for number in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(set(terminal.getvalue().splitlines())) == [f"thread {number} says hello" for number in range(4)]
    emf = (tmp_path / "metrics.log").read_text().splitlines()
    assert len(emf) == 800 and all(json.loads(line)["_aws"]["thread"] in range(4) for line in emf)


def test_powertools_metric_blobs_never_reach_the_terminal(tmp_path, monkeypatch, capsys):
    """Where the blobs came from: with POWERTOOLS_METRICS_DISABLED=true, Powertools never clears its metric
    set at the end of an invocation, and add_metric prints the set, disabled or not, once a metric holds 100
    values. The stack now keeps metrics on (each invocation flushes its own line) and sends EMF to a file."""
    from jobsync.observability import count, metrics

    metrics.clear_metrics()
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with metric_lines_to(tmp_path / "metrics.log"):
        print("the banner")
        for _ in range(100):
            count("ProviderErrors")
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
        count("JobsDiscovered", 3)
        metrics.flush_metrics()
    out = capsys.readouterr().out
    assert out == "the banner\n"
    lines = (tmp_path / "metrics.log").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["_aws"] for line in lines)
    assert json.loads(lines[0])["ProviderErrors"] == [1.0] * 100
    assert json.loads(lines[1])["JobsDiscovered"] == [3.0]


# ---- idle: the stream waits for writes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def dynamodb(tmp_path_factory):
    import boto3
    from moto.core.base_backend import BackendDict

    from local.dynamodb_server import LocalDynamoDB

    server = LocalDynamoDB(tmp_path_factory.mktemp("idle"))
    client = boto3.client(
        "dynamodb",
        endpoint_url=server.start(),
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="x",
    )
    client.create_table(
        TableName="idle-test",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    server.restore()
    yield server, client
    server.stop()
    BackendDict.reset()


def test_the_stream_task_runs_after_writes_only_and_stops_at_once(dynamodb):
    server, client = dynamodb
    runs: list[int] = []
    ran = threading.Event()
    background = Background()
    background.after_writes(server, "stream", lambda: (runs.append(server.writes), ran.set()))
    time.sleep(0.3)
    assert runs == []  # idle: nothing to read
    client.put_item(TableName="idle-test", Item={"pk": {"S": "d"}})
    assert ran.wait(60)  # a generous bound: a loaded machine is slow, not broken
    # Closing wakes the thread that waits for writes (for up to 60 s otherwise): it has ended well before
    # this bound, which no wall-clock race decides.
    background.close(timeout=30)
    assert len(runs) == 1 and not any(thread.is_alive() for thread in background.threads)


def test_the_functions_share_one_metric_set_under_a_lock_so_concurrent_flushes_never_meet_an_emptied_set(
    monkeypatch,
) -> None:
    from jobsync.observability import metrics
    from local import lambda_runtime

    lambda_runtime.load_handler("functions/health")  # the first load puts the process's metric set under the lock
    held_while: list[str] = []
    provider = metrics.provider
    serialize = type(provider).serialize_metric_set

    def checking_serialize(self, *args, **kwargs):
        held_while.append("locked" if lambda_runtime.METRICS_LOCK._is_owned() else "unlocked")  # type: ignore[attr-defined]
        return serialize(self, *args, **kwargs)

    monkeypatch.setattr(type(provider), "serialize_metric_set", checking_serialize)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    metrics.add_metric(name="TestFlush", unit="Count", value=1)
    metrics.flush_metrics()
    assert held_while == ["locked"]  # the check that the set holds metrics and its serializing are one step
    assert not provider.metric_set
