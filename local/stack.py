"""`make run`: the whole service on one machine, no AWS account, no Docker, no internet.

moto's DynamoDB behind the journaled local server (local/dynamodb_server.py),
tables from template.yaml, the jobs stream delivered to the broadcaster, the
poller on its schedule, the Replicate simulator (when no REPLICATE_API_TOKEN is
set) and a local API Gateway on one port — all in one foreground process that
Ctrl-C stops cleanly. Every answered write is on disk before its answer, so
jobs and settings survive a restart, kill -9 included.

The state folder (JOBSYNC_STATE_DIR, default .local-state/) holds one folder per
provider endpoint (`simulator/`, `replicate-<hash of the API base URL>/`): the
jobs of one provider mean nothing to another, whose poller would end them as
unknown. The generated API token is kept at its root, whatever the provider, so
that an open dashboard keeps working across restarts.

Idle, the stack does next to nothing: the stream is read only after DynamoDB
answered a write (the server counts them), the journal is compacted only once it
has grown, and the poller runs on its schedule.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from local import lambda_runtime

if TYPE_CHECKING:
    import httpx

    from local.dynamodb_server import LocalDynamoDB

log = logging.getLogger("local.stack")
ROOT = lambda_runtime.ROOT
SIMULATOR_TOKEN = "r8_jobsync_simulator"
REGION = "us-east-1"
REPLICATE_API_URL = "https://api.replicate.com/v1"
TOKEN_FILE = "api-token"
METRICS_FILE = "metrics.log"
DEAD_LETTERS_FILE = "dead-letters.jsonl"  # background invocations that failed every attempt
DEFAULT_PORT = 8001
PROVIDER_CHECK_SECONDS = 5.0
STOP_SECONDS = 1.0  # what each part of the stack is given to finish at Ctrl-C

# (variable, meaning) for --help; the README's Configuration table says the same.
VARIABLES = (
    ("JOBSYNC_PORT", f"port for HTTP, WebSocket and the dashboard (default {DEFAULT_PORT})"),
    ("JOBSYNC_API_TOKEN", "the bearer token accepted; unset: one is generated and kept in <state>/api-token"),
    ("JOBSYNC_STATE_DIR", "where jobs, settings and the token are kept (default .local-state/)"),
    ("REPLICATE_API_TOKEN", "talk to Replicate; unset: the built-in Replicate simulator"),
    ("REPLICATE_API_BASE_URL", f"the provider's API (default {REPLICATE_API_URL})"),
    ("REPLICATE_WEBHOOK_SECRET", "whsec_...; unset: fetched from the provider"),
    ("JOBSYNC_WEBHOOK_URL", "the webhook URL given to the provider; set, automatic polling is off"),
    ("JOBSYNC_SIMULATOR_SPEED", "how much faster the simulator's jobs move (default 1)"),
    ("JOBSYNC_SNAPSHOT_SECONDS", "how often the journal's size is checked for compaction (default 5)"),
    ("JOBSYNC_LOG_LEVEL", "the functions' log level (default WARNING)"),
    ("SIMPLETUNER_JOB_POLL_INTERVAL", "poll interval in seconds (default 30)"),
    ("JOBSYNC_CONFIG", "YAML file with background.job_status_polling.enabled / interval_seconds"),
    ("JOBSYNC_HARDWARE_MAP", 'JSON {"owner/model": "gpu-a100-large"} for costs'),
    ("JOBSYNC_DEFAULT_HARDWARE", "hardware of the models not in the map (default gpu-h100)"),
    ("JOBSYNC_MAX_CONNECTIONS_PER_IP", "WebSocket connections per source IP (default 5)"),
    ("JOBSYNC_SYNC_CAP", "jobs taken per provider list in one sync (default 1000)"),
    ("JOBSYNC_WEBHOOK_RATE_LIMIT_PER_IP", "requests a minute one IP may send to /api/webhooks/ (default 600; 0: off)"),
    ("JOBSYNC_NOTIFY_WEBHOOK_URL", "one JSON POST per job that ends or crosses the cost threshold (Slack-compatible)"),
    ("JOBSYNC_NOTIFY_COST_THRESHOLD_USD", "a job whose cost reaches this many dollars is announced once"),
)


class StartError(Exception):
    """The environment does not allow a start; the message says which variable to fix, in one line."""


# ---- settings --------------------------------------------------------------------------------------


def provider_state_dir(root: Path, replicate_token: str | None, replicate_base_url: str | None) -> Path:
    """The state folder of the provider endpoint this start talks to, under the state root."""
    if not replicate_token:
        return root / "simulator"
    url = (replicate_base_url or REPLICATE_API_URL).rstrip("/")
    return root / f"replicate-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def _usable_token(text: str) -> bool:
    return bool(text) and not any(character.isspace() for character in text)


def kept_api_token(root: Path) -> tuple[str, bool]:
    """The generated API token saved in `root`/api-token (mode 0600), made and saved on first use.

    Returns the token and whether it was made just now.
    """
    path = root / TOKEN_FILE
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    if _usable_token(kept):
        os.chmod(path, 0o600)  # in case it was loosened since
        return kept, False
    if path.exists():
        log.warning("%s holds no usable token; a new one replaces it", path)
    token = secrets.token_urlsafe(24)
    root.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=root, prefix=".api-token-")  # created with mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(token + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return token, True


def _port(env: Mapping[str, str]) -> int:
    text = (env.get("JOBSYNC_PORT") or "").strip()
    if not text:
        return DEFAULT_PORT
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise StartError(f"JOBSYNC_PORT={text} is not a port number (1-65535): set it to a free port, e.g. 8001")
    return int(text)


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise StartError(f"{name}={text} is not a number above 0")
    return value


@dataclass(frozen=True)
class LocalSettings:
    port: int
    api_token: str
    token_origin: str  # "environment" (JOBSYNC_API_TOKEN), "generated" (just now) or "kept" (generated earlier)
    state_root: Path
    state_dir: Path  # this provider endpoint's folder under state_root
    replicate_token: str | None
    replicate_base_url: str | None
    webhook_secret: str | None
    webhook_url: str | None
    simulator_speed: float
    snapshot_seconds: float

    @property
    def token_file(self) -> Path:
        return self.state_root / TOKEN_FILE

    @property
    def provider_url(self) -> str:
        return (self.replicate_base_url or REPLICATE_API_URL).rstrip("/")

    @classmethod
    def from_env(cls) -> LocalSettings:
        """The settings from the environment; without JOBSYNC_API_TOKEN, the kept token (made on first use).

        A variable that cannot be used raises StartError, before anything is written.
        """
        env = os.environ
        port = _port(env)
        simulator_speed = _positive(env, "JOBSYNC_SIMULATOR_SPEED", 1.0)
        snapshot_seconds = _positive(env, "JOBSYNC_SNAPSHOT_SECONDS", 5.0)
        root = Path(env.get("JOBSYNC_STATE_DIR") or ROOT / ".local-state")
        replicate_token = env.get("REPLICATE_API_TOKEN") or None
        replicate_base_url = env.get("REPLICATE_API_BASE_URL") or None
        token = env.get("JOBSYNC_API_TOKEN") or ""
        if token:
            origin = "environment"
        else:
            token, made = kept_api_token(root)
            origin = "generated" if made else "kept"
        return cls(
            port=port,
            api_token=token,
            token_origin=origin,
            state_root=root,
            state_dir=provider_state_dir(root, replicate_token, replicate_base_url),
            replicate_token=replicate_token,
            replicate_base_url=replicate_base_url,
            webhook_secret=env.get("REPLICATE_WEBHOOK_SECRET") or None,
            webhook_url=env.get("JOBSYNC_WEBHOOK_URL") or None,
            simulator_speed=simulator_speed,
            snapshot_seconds=snapshot_seconds,
        )


def listen(port: int) -> socket.socket:
    """The gateway's listening socket on 127.0.0.1:`port`, taken before anything else starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartError(
                f"port {port} is in use (JOBSYNC_PORT={port}): stop what listens there "
                f"or choose another port, e.g. JOBSYNC_PORT={port + 1 if port < 65535 else 8001} make run"
            ) from None
        raise StartError(f"cannot listen on 127.0.0.1:{port} (JOBSYNC_PORT={port}): {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


# ---- the provider ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderCheck:
    ok: bool
    line: str  # the account name, or what to fix


def check_provider(
    base_url: str, token: str, *, timeout: float = PROVIDER_CHECK_SECONDS, transport: httpx.BaseTransport | None = None
) -> ProviderCheck:
    """One GET /account with the token: the account's name, or the one line that says which variable to fix."""
    import httpx

    url = base_url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout, transport=transport, follow_redirects=False) as client:
            answer = client.get(f"{url}/account", headers={"Authorization": f"Bearer {token}"})
    except (httpx.HTTPError, httpx.InvalidURL):
        return ProviderCheck(False, f"cannot reach {url}: check REPLICATE_API_BASE_URL")
    if answer.status_code in (401, 403):
        return ProviderCheck(False, f"REPLICATE_API_TOKEN was refused by {url}: check the token")
    if answer.status_code >= 500:
        return ProviderCheck(False, f"{url} answered HTTP {answer.status_code}: the poller will keep trying")
    try:
        username = answer.json().get("username") if answer.status_code == 200 else None
    except (ValueError, AttributeError):
        username = None
    if not username:
        return ProviderCheck(
            False, f"{url} answered HTTP {answer.status_code} to GET /account: check REPLICATE_API_BASE_URL"
        )
    return ProviderCheck(True, f"account {username}")


# ---- DynamoDB --------------------------------------------------------------------------------------


def _aws_environment(moto_url: str) -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        }
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)


def _count_items(client: Any, table: str) -> int:
    total = 0
    for page in client.get_paginator("scan").paginate(TableName=table, Select="COUNT"):
        total += page["Count"]
    return total


# ---- background work -------------------------------------------------------------------------------


def _logged(name: str, task: Callable[..., Any], *args: Any) -> None:
    """Run a background task; a failure is logged and the next round tries again."""
    try:
        task(*args)
    except Exception:  # noqa: BLE001 - a background loop must outlive any one failure
        log.exception("%s failed", name)


class Background:
    """Threads that repeat a task until told to stop; one failure never ends the loop."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._wakers: list[Callable[[], None]] = []

    def _start(self, name: str, loop: Callable[[], None]) -> None:
        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def every(self, seconds: float, name: str, task: Callable[[], Any]) -> None:
        def loop() -> None:
            while not self.stop.wait(seconds):
                _logged(name, task)

        self._start(name, loop)

    def after_writes(self, dynamodb: LocalDynamoDB, name: str, task: Callable[[], Any]) -> None:
        """Run `task` each time DynamoDB saw a write since its last run (writes during a run start another)."""

        def loop() -> None:
            seen = dynamodb.writes
            while not self.stop.is_set():
                current = dynamodb.wait_for_write(seen, timeout=60)
                if current != seen and not self.stop.is_set():
                    seen = current
                    _logged(name, task)

        self._wakers.append(dynamodb.wake)
        self._start(name, loop)

    def at_rate(self, seconds: float, name: str, task: Callable[[float], Any]) -> None:
        """Start `task(scheduled_time)` every `seconds`, each run on its own thread whether or not the
        last one ended, as a fixed-rate EventBridge schedule invokes a Lambda; the first run starts now."""

        def loop() -> None:
            scheduled = time.time()
            while True:
                # In-flight runs are not waited for at shutdown, as a stack teardown would not.
                threading.Thread(target=_logged, args=(name, task, scheduled), name=name, daemon=True).start()
                scheduled += seconds
                if self.stop.wait(max(0.0, scheduled - time.time())):
                    return

        self._start(f"{name}-schedule", loop)

    def close(self, timeout: float = STOP_SECONDS) -> None:
        self.stop.set()
        for wake in self._wakers:
            wake()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


class ThreadedServer:
    """A uvicorn server on its own thread (the Replicate simulator, Lambda's Invoke API)."""

    def __init__(self, app: Any, port: int, name: str = "simulator") -> None:
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=STOP_SECONDS
            )
        )
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=2 * STOP_SECONDS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_simulator(settings: LocalSettings) -> tuple[ThreadedServer, str]:
    from local.replicate_simulator import SimulatedReplicate, create_app

    anchor_file = settings.state_dir / "simulator.json"
    # The simulator's story is anchored in time; a restart continues it instead of replaying it.
    anchor = json.loads(anchor_file.read_text())["anchor"] if anchor_file.exists() else time.time()
    anchor_file.write_text(json.dumps({"anchor": anchor}))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    simulator = SimulatedReplicate(
        anchor=anchor,
        speed=settings.simulator_speed,
        token=SIMULATOR_TOKEN,
        webhook_secret=settings.webhook_secret,
        base_url=base_url,
        # Cancels made through its API survive a restart, like the anchor: a canceled job stays canceled.
        cancellations_file=settings.state_dir / "simulator-cancellations.jsonl",
    )
    server = ThreadedServer(create_app(simulator, settings.webhook_url), port)
    server.start()
    return server, base_url


def _function_environment(
    template: dict[str, Any], settings: LocalSettings, tables: dict[str, str], replicate: tuple[str, str]
) -> dict[str, str]:
    """The functions' environment from template.yaml, with this machine's values for its parameters."""
    from local.template import resolve, websocket_stage

    env = os.environ
    replicate_token, replicate_url = replicate
    parameters = {
        "ApiTokenHashes": hashlib.sha256(settings.api_token.encode()).hexdigest(),
        "ReplicateApiTokenSecretArn": "arn:aws:secretsmanager:us-east-1:000000000000:secret:unused-locally",
        "ReplicateApiBaseUrl": replicate_url,
        "WebhookUrl": settings.webhook_url or "",
        "LogLevel": env.get("JOBSYNC_LOG_LEVEL", "WARNING"),
    }
    optional = {
        "PollIntervalSeconds": "SIMPLETUNER_JOB_POLL_INTERVAL",
        "HardwareMap": "JOBSYNC_HARDWARE_MAP",
        "DefaultHardware": "JOBSYNC_DEFAULT_HARDWARE",
        "MaxConnectionsPerIp": "JOBSYNC_MAX_CONNECTIONS_PER_IP",
        "SyncCapPerList": "JOBSYNC_SYNC_CAP",
    }
    parameters.update({name: env[variable] for name, variable in optional.items() if env.get(variable)})
    stage = websocket_stage(template)
    refs = {**tables, "WebSocketApi": "local", "WebSocketStage": stage}
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    resolved = {
        name: str(resolve(value, template, parameter_values=parameters, refs=refs)) for name, value in variables.items()
    }
    resolved.pop("REPLICATE_API_TOKEN_SECRET_ARN")
    if not env.get("SIMPLETUNER_JOB_POLL_INTERVAL"):
        resolved.pop("SIMPLETUNER_JOB_POLL_INTERVAL")  # let JOBSYNC_CONFIG's interval speak, if any
    resolved.update(
        {
            # In AWS the token comes from Secrets Manager; here it is handed over directly.
            "REPLICATE_API_TOKEN": replicate_token,
            "REPLICATE_WEBHOOK_SECRET": settings.webhook_secret or "",
            # API Gateway's hostnames are this machine's port here.
            "JOBSYNC_WEBSOCKET_URL": f"ws://127.0.0.1:{settings.port}/{stage}",
            "JOBSYNC_WEBSOCKET_MANAGEMENT_URL": f"http://127.0.0.1:{settings.port}/{stage}",
            # Metrics stay on, as in AWS: each invocation's EMF line goes to <state>/metrics.log (see
            # lambda_runtime.MetricLinesToFile). Disabled, Powertools would never clear its metric set and
            # would print it to the terminal whenever a metric reached 100 values.
            "POWERTOOLS_METRICS_DISABLED": "false",
        }
    )
    return resolved


def _stream_pump(template: dict[str, Any], tables: dict[str, str], moto_url: str) -> Callable[[], None]:
    """Delivers the jobs stream to each of its consumers in batches, as their event source mappings do.

    One reader for all of them (the local server drops records once read), each consumer getting the
    records its filter lets through, with its retries and partial batch failures.
    """
    import boto3
    from botocore.config import Config

    from local.streams import StreamReader, deliver_to_consumer
    from local.template import stream_consumers

    consumers = stream_consumers(template)
    (table_id,) = {consumer.table_id for consumer in consumers}  # the jobs table's stream only
    streams = boto3.client(
        "dynamodbstreams", endpoint_url=moto_url, region_name=REGION, config=Config(account_id_endpoint_mode="disabled")
    )
    reader = StreamReader.for_table(
        boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION), streams, tables[table_id]
    )

    def invoker(function: Any) -> Callable[[dict[str, Any]], Any]:
        return lambda event: lambda_runtime.invoke(function.code_uri, function.handler, event, timeout=function.timeout)

    def pump() -> None:
        records = reader.read()
        for consumer in consumers:
            given_up = deliver_to_consumer(
                records,
                patterns=consumer.filter_patterns,
                batch_size=consumer.batch_size,
                retries=2 if consumer.maximum_retry_attempts is None else consumer.maximum_retry_attempts,
                reports_item_failures=consumer.reports_item_failures,
                invoke=invoker(consumer.function),
            )
            if given_up:
                log.warning("%s gave up on %d stream record(s)", consumer.function.logical_id, len(given_up))

    return pump


def _serve_lambda_invoke(template: dict[str, Any], settings: LocalSettings, cleanup: ExitStack) -> None:
    """Lambda's Invoke API on a port of its own, for the functions' hand-offs (jobsync.background)."""
    from local.async_invoke import AsyncInvoker, create_app, invokable_functions

    invoker = AsyncInvoker(invokable_functions(template), settings.state_dir / DEAD_LETTERS_FILE)
    server = ThreadedServer(create_app(invoker), free_port(), name="lambda-invoke")
    server.start()
    cleanup.callback(invoker.close)
    cleanup.callback(server.close)
    os.environ["AWS_ENDPOINT_URL_LAMBDA"] = server.url
    log.info("Lambda's Invoke API on %s for %d function(s)", server.url, len(invoker.functions))


def _serve_notify_topic(template: dict[str, Any], settings: LocalSettings, cleanup: ExitStack) -> dict[str, str]:
    """The notification topic (SNS's Publish) on a port of its own; the notification settings for the functions.

    Every notification is printed to this log. With JOBSYNC_NOTIFY_WEBHOOK_URL set (read from the
    environment by the functions, as the secret's value is in AWS), the notifier hands each one to
    notify_webhook, which posts it there.
    """
    from local.notify_topic import LocalTopic, create_app, topic_arn
    from local.template import resolve

    topic = LocalTopic(topic_arn(REGION))
    server = ThreadedServer(create_app(topic), free_port(), name="sns")
    server.start()
    cleanup.callback(server.close)
    os.environ["AWS_ENDPOINT_URL_SNS"] = server.url
    webhook = bool(os.environ.get("JOBSYNC_NOTIFY_WEBHOOK_URL"))
    function_name = resolve(template["Resources"]["NotifyWebhookFunction"]["Properties"]["FunctionName"], template)
    log.info(
        "notification topic on %s: notifications are printed here%s",
        server.url,
        " and posted to JOBSYNC_NOTIFY_WEBHOOK_URL" if webhook else " (set JOBSYNC_NOTIFY_WEBHOOK_URL to post them)",
    )
    return {
        "JOBSYNC_NOTIFY_TOPIC_ARN": topic.arn,
        "JOBSYNC_DASHBOARD_URL": f"http://127.0.0.1:{settings.port}/",
        "JOBSYNC_NOTIFY_WEBHOOK_FUNCTION": str(function_name) if webhook else "",
    }


def _scheduled_poller(schedule: Any) -> Callable[[float], None]:
    """The poller invoked with the template's Input, its placeholder filled as EventBridge Scheduler fills it."""
    function = schedule.function

    def poll(scheduled: float) -> None:
        stamp = datetime.fromtimestamp(scheduled, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = json.loads(json.dumps(schedule.input).replace("<aws.scheduler.scheduled-time>", stamp))
        lambda_runtime.invoke(function.code_uri, function.handler, event, timeout=function.timeout)

    return poll


# ---- what the user sees ----------------------------------------------------------------------------


def _rate_limit_parameters() -> dict[str, str]:
    """WebhookRateLimitPerIp from JOBSYNC_WEBHOOK_RATE_LIMIT_PER_IP when it is set (0: no limit)."""
    value = os.environ.get("JOBSYNC_WEBHOOK_RATE_LIMIT_PER_IP", "")
    if not value:
        return {}
    if not value.isdigit():
        raise StartError(f"JOBSYNC_WEBHOOK_RATE_LIMIT_PER_IP={value} is not a whole number (0: no limit)")
    return {"WebhookRateLimitPerIp": value}


def _token_note(settings: LocalSettings) -> str:
    if settings.token_origin == "generated":
        return f"  (generated and kept in {settings.token_file}; set JOBSYNC_API_TOKEN to choose one)"
    if settings.token_origin == "kept":
        return f"  (generated earlier, kept in {settings.token_file}; set JOBSYNC_API_TOKEN to choose one)"
    return ""


def _banner(
    settings: LocalSettings,
    simulated: bool,
    stage: str,
    *,
    jobs: int = 0,
    provider: ProviderCheck | None = None,
) -> str:
    base = f"http://127.0.0.1:{settings.port}"
    if simulated:
        provider_line = "built-in Replicate simulator"
    else:
        provider_line = settings.provider_url + (f"  ({provider.line})" if provider and provider.ok else "")
    lines = [
        "",
        "jobsync is up",
        f"  dashboard   {base}/#token={settings.api_token}",
        f"  API         {base}/api  (Authorization: Bearer $TOKEN)",
        f"  WebSocket   ws://127.0.0.1:{settings.port}/{stage}?token=$TOKEN",
        f"  token       {settings.api_token}" + _token_note(settings),
        f"  provider    {provider_line}",
    ]
    if provider and not provider.ok:
        lines.append(f"  problem     {provider.line}")
    lines += [
        f"  state       {settings.state_dir}",
        f"  metrics     {settings.state_dir / METRICS_FILE}",
        "",
        "For the README's curl examples, in another terminal:",
        f"  export TOKEN={shlex.quote(settings.api_token)}",
        f'  curl -X POST -H "Authorization: Bearer $TOKEN" {base}/api/cloud/jobs/sync',
        "",
    ]
    if jobs:
        lines.append(f"{jobs} job{'s' if jobs != 1 else ''} stored from earlier runs; the poller keeps them current.")
    else:
        lines.append("Open the dashboard and press Sync to import the provider's jobs; the poller keeps them current.")
    lines += ["Ctrl-C stops everything; jobs and settings are kept for the next start.", ""]
    return "\n".join(lines)


def _configure_logging() -> None:
    """The stack's own lines (local.*) at INFO on stderr; the root logger is left alone.

    The functions log through Powertools' "jobsync" logger, which has its own
    JSON handler and level (LogLevel); a handler on the root logger would print
    each of those lines a second time.
    """
    stack_logger = logging.getLogger("local")
    if not stack_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        stack_logger.addHandler(handler)
    stack_logger.setLevel(logging.INFO)
    stack_logger.propagate = False
    for noisy in ("werkzeug", "httpx", "botocore", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _note_shared_snapshot(settings: LocalSettings) -> None:
    """Earlier versions kept one snapshot for every provider, at the root; it is left alone, not loaded."""
    shared = settings.state_root / "dynamodb.json"
    if shared.exists():
        log.warning(
            "%s predates per-provider state and is not loaded (its jobs may belong to any provider); "
            "move it to %s to keep them for this one",
            shared,
            settings.state_dir,
        )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    width = max(len(name) for name, _ in VARIABLES) + 2
    parser = argparse.ArgumentParser(
        prog="python -m local.stack",
        description=(
            "jobsync on this machine (what `make run` starts): the HTTP API, the WebSocket and the dashboard "
            "on one port, moto's DynamoDB, the jobs stream, the poller's schedule and, without "
            "REPLICATE_API_TOKEN, a Replicate simulator. No AWS account, no Docker, no internet. "
            "Ctrl-C stops it; jobs and settings are kept for the next start."
        ),
        epilog="environment variables:\n"
        + "\n".join(f"  {name:<{width}}{meaning}" for name, meaning in VARIABLES)
        + "\n\nexample:\n  JOBSYNC_PORT=8002 JOBSYNC_SIMULATOR_SPEED=10 make run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.parse_args(argv)


# ---- main --------------------------------------------------------------------------------------------


def _without_httpx_command_line() -> None:
    """httpx's package imports its command-line client (httpx._main, and with it rich and pygments: 0.1-0.2 s of
    CPU at each start) unless that import fails, as it does where the client's extras are not installed. The
    stack never runs that client: marked absent before anything imports httpx, httpx takes its own fallback."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None: "not importable"


def main(argv: list[str] | None = None) -> int:
    _without_httpx_command_line()
    _arguments(argv)
    _configure_logging()
    with ExitStack() as cleanup:
        try:
            # The port first: a stack that cannot listen stops before it writes or starts anything.
            gateway_socket = cleanup.enter_context(listen(_port(os.environ)))
            settings = LocalSettings.from_env()
            return _run(settings, gateway_socket, cleanup)
        except StartError as problem:
            print(f"jobsync: {problem}", file=sys.stderr)
            return 2


def _run(settings: LocalSettings, gateway_socket: socket.socket, cleanup: ExitStack) -> int:
    log.info("starting jobsync's local stack in %s (python -m local.stack --help for the options)", settings.state_dir)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    snapshot_path = settings.state_dir / "dynamodb.json"
    _note_shared_snapshot(settings)
    # What Lambda prints to CloudWatch: the functions' metric lines go to a file, not the terminal.
    cleanup.enter_context(lambda_runtime.metric_lines_to(settings.state_dir / METRICS_FILE))
    lambda_runtime.use_layer()
    # Powertools warns on every invocation that emitted no metric; locally that is only noise.
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    log.info("starting moto's DynamoDB (the first start imports moto, a few seconds)")
    import boto3
    import uvicorn

    from local import dynamodb_server
    from local.gateway import WebSocketApi, create_gateway, per_ip_limits
    from local.persistence import restore_tables
    from local.template import (
        authorizer,
        create_tables,
        functions,
        http_routes,
        load_template,
        rate_seconds,
        resolve,
        scheduled_functions,
        websocket_routes,
        websocket_stage,
    )

    dynamodb = dynamodb_server.LocalDynamoDB(settings.state_dir)  # snapshot + journal: no answered write is lost
    dynamodb.start()
    cleanup.callback(dynamodb.stop)
    _aws_environment(dynamodb.url)
    client = boto3.client("dynamodb", region_name=REGION)
    template = load_template()
    tables = create_tables(client, template, lambda logical_id: f"jobsync-local-{logical_id}")
    restored = restore_tables(dynamodb, client, tables)
    jobs = _count_items(client, tables["JobsTable"])
    log.info("DynamoDB (moto) on %s: %d items restored (%d jobs)", dynamodb.url, restored, jobs)

    simulator = None
    provider = None
    if settings.replicate_token:
        replicate = (settings.replicate_token, settings.provider_url)
        log.info("checking REPLICATE_API_TOKEN with GET %s/account", settings.provider_url)
        provider = check_provider(settings.provider_url, settings.replicate_token)
        if provider.ok:
            log.info("Replicate at %s: %s", settings.provider_url, provider.line)
        else:
            log.warning("%s (the stack starts anyway)", provider.line)
    else:
        log.info("starting the Replicate simulator")
        simulator, simulator_url = _start_simulator(settings)
        cleanup.callback(simulator.close)
        replicate = (SIMULATOR_TOKEN, simulator_url)
        log.info("Replicate simulator on %s", simulator_url)

    os.environ.update(_function_environment(template, settings, tables, replicate))
    os.environ.update(_serve_notify_topic(template, settings, cleanup))
    from jobsync.config import ConfigError, get_settings

    try:
        get_settings()  # a configuration error stops the stack here, not at the first request
    except ConfigError as problem:
        raise StartError(str(problem)) from None
    handlers = sorted({(spec.code_uri, spec.handler) for spec in functions(template).values()})
    log.info("loading the %d functions of template.yaml", len(handlers))
    for code_uri, handler in handlers:
        lambda_runtime.load_handler(code_uri, handler)

    _serve_lambda_invoke(template, settings, cleanup)
    from local.notify_topic import catch_up

    # What a crash kept from the notifier (its hand-offs need the Invoke API above); a failure only logs.
    _logged("notification catch-up", catch_up, tables["JobsTable"])

    stage = websocket_stage(template)
    websocket = WebSocketApi(websocket_routes(template), stage)
    app = create_gateway(
        http_routes(template),
        authorizer(template),
        websocket,
        ROOT / "web",
        per_ip_limits=per_ip_limits(template, _rate_limit_parameters()),  # the web ACL's per-IP rule
    )

    background = Background()
    background.after_writes(dynamodb, "stream", _stream_pump(template, tables, dynamodb.url))
    schedule = scheduled_functions(template)[0]
    background.at_rate(rate_seconds(str(resolve(schedule.expression, template))), "poller", _scheduled_poller(schedule))
    background.every(settings.snapshot_seconds, "compaction", dynamodb.compact_if_due)

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            ws="local.gateway:WebSocketProtocol",  # websockets-sansio, answering a handshake it cannot read
            proxy_headers=False,  # the source IP is the peer's: X-Forwarded-For cannot dodge the per-IP cap
            lifespan="off",
            timeout_graceful_shutdown=STOP_SECONDS,
        )
    )
    original_startup = server.startup

    async def startup(*args: Any, **kwargs: Any) -> None:
        await original_startup(*args, **kwargs)
        print(_banner(settings, simulator is not None, stage, jobs=jobs, provider=provider), flush=True)

    server.startup = startup  # type: ignore[method-assign]
    log.info("starting API Gateway (HTTP and WebSocket) on http://127.0.0.1:%d", settings.port)
    try:
        server.run(sockets=[gateway_socket])
    except KeyboardInterrupt:
        pass  # uvicorn has shut down already and re-raises Ctrl-C for us to finish
    # Stopping takes a second or two, each step bounded; a second Ctrl-C would only leave a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log.info("stopping")
    background.close()
    saved = dynamodb.compact()
    log.info("saved %d item%s to %s", saved, "" if saved == 1 else "s", snapshot_path)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is stopped and saved: skip the interpreter's teardown, which spends seconds collecting
    # the garbage of moto's backends (Ctrl-C would take that long).
    os._exit(code)
