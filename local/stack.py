"""`make run`: the whole service on one machine, no AWS account, no Docker, no internet.

moto's DynamoDB server, tables from template.yaml, the jobs stream delivered
to the broadcaster, the poller on its schedule, the Replicate simulator (when
no REPLICATE_API_TOKEN is set) and a local API Gateway on one port — all in
one foreground process tree that Ctrl-C stops cleanly. Jobs and settings are
saved under the state folder and loaded again at the next start.

The state folder (JOBSYNC_STATE_DIR, default .local-state/) holds one folder per
provider endpoint (`simulator/`, `replicate-<hash of the API base URL>/`): the
jobs of one provider mean nothing to another, whose poller would end them as
unknown. The generated API token is kept at its root, whatever the provider, so
that an open dashboard keeps working across restarts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import boto3
import uvicorn
from botocore.config import Config

from local import lambda_runtime
from local.gateway import WebSocketApi, create_gateway
from local.persistence import load_tables, save_tables
from local.streams import StreamReader
from local.template import (
    Schedule,
    authorizer,
    create_tables,
    http_routes,
    load_template,
    rate_seconds,
    resolve,
    scheduled_functions,
    stream_consumers,
    websocket_routes,
    websocket_stage,
)

log = logging.getLogger("local.stack")
ROOT = lambda_runtime.ROOT
SIMULATOR_TOKEN = "r8_jobsync_simulator"
REGION = "us-east-1"
REPLICATE_API_URL = "https://api.replicate.com/v1"
TOKEN_FILE = "api-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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

    @classmethod
    def from_env(cls) -> LocalSettings:
        """The settings from the environment; without JOBSYNC_API_TOKEN, the kept token (made on first use)."""
        env = os.environ
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
            port=int(env.get("JOBSYNC_PORT") or 8001),
            api_token=token,
            token_origin=origin,
            state_root=root,
            state_dir=provider_state_dir(root, replicate_token, replicate_base_url),
            replicate_token=replicate_token,
            replicate_base_url=replicate_base_url,
            webhook_secret=env.get("REPLICATE_WEBHOOK_SECRET") or None,
            webhook_url=env.get("JOBSYNC_WEBHOOK_URL") or None,
            simulator_speed=float(env.get("JOBSYNC_SIMULATOR_SPEED") or 1.0),
            snapshot_seconds=float(env.get("JOBSYNC_SNAPSHOT_SECONDS") or 5.0),
        )


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

    def every(self, seconds: float, name: str, task: Callable[[], Any]) -> None:
        def loop() -> None:
            while not self.stop.wait(seconds):
                _logged(name, task)

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

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

        thread = threading.Thread(target=loop, name=f"{name}-schedule", daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


class ThreadedServer:
    """A uvicorn server on its own thread (the Replicate simulator)."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="simulator", daemon=True)

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


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
    )
    server = ThreadedServer(create_app(simulator, settings.webhook_url), port)
    server.start()
    return server, base_url


def _function_environment(
    template: dict[str, Any], settings: LocalSettings, tables: dict[str, str], replicate: tuple[str, str]
) -> dict[str, str]:
    """The functions' environment from template.yaml, with this machine's values for its parameters."""
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
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
        }
    )
    return resolved


def _stream_pump(template: dict[str, Any], tables: dict[str, str], moto_url: str) -> Callable[[], None]:
    """Delivers the jobs stream to its consumer in batches, as Lambda's event source mapping does."""
    consumer = stream_consumers(template)[0]
    streams = boto3.client(
        "dynamodbstreams", endpoint_url=moto_url, region_name=REGION, config=Config(account_id_endpoint_mode="disabled")
    )
    reader = StreamReader.for_table(
        boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION), streams, tables[consumer.table_id]
    )
    function = consumer.function

    def pump() -> None:
        records = reader.read()
        for start in range(0, len(records), consumer.batch_size):
            lambda_runtime.invoke(
                function.code_uri,
                function.handler,
                {"Records": records[start : start + consumer.batch_size]},
                timeout=function.timeout,
            )

    return pump


def _scheduled_poller(schedule: Schedule) -> Callable[[float], None]:
    """The poller invoked with the template's Input, its placeholder filled as EventBridge Scheduler fills it."""
    function = schedule.function

    def poll(scheduled: float) -> None:
        stamp = datetime.fromtimestamp(scheduled, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = json.loads(json.dumps(schedule.input).replace("<aws.scheduler.scheduled-time>", stamp))
        lambda_runtime.invoke(function.code_uri, function.handler, event, timeout=function.timeout)

    return poll


def _token_note(settings: LocalSettings) -> str:
    if settings.token_origin == "generated":
        return f"  (generated and kept in {settings.token_file}; set JOBSYNC_API_TOKEN to choose one)"
    if settings.token_origin == "kept":
        return f"  (generated earlier, kept in {settings.token_file}; set JOBSYNC_API_TOKEN to choose one)"
    return ""


def _banner(settings: LocalSettings, simulated: bool, stage: str) -> str:
    base = f"http://127.0.0.1:{settings.port}"
    lines = [
        "",
        "jobsync is up",
        f"  dashboard   {base}/#token={settings.api_token}",
        f"  API         {base}/api  (Authorization: Bearer <token>)",
        f"  WebSocket   ws://127.0.0.1:{settings.port}/{stage}?token=<token>",
        f"  token       {settings.api_token}" + _token_note(settings),
        f"  provider    {'built-in Replicate simulator' if simulated else settings.replicate_base_url or 'Replicate'}",
        f"  state       {settings.state_dir}",
        "Open the dashboard and press Sync to import the provider's jobs; the poller keeps them current.",
        "Ctrl-C stops everything; jobs and settings are kept for the next start.",
        "",
    ]
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


def main() -> int:
    lambda_runtime.use_layer()
    # Powertools warns on every invocation that emitted no metric; locally that is only noise.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    _configure_logging()
    settings = LocalSettings.from_env()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    snapshot = settings.state_dir / "dynamodb.json"
    _note_shared_snapshot(settings)

    from moto.server import ThreadedMotoServer

    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    moto_url = f"http://127.0.0.1:{moto_port}"
    _aws_environment(moto_url)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    template = load_template()
    tables = create_tables(dynamodb, template, lambda logical_id: f"jobsync-local-{logical_id}")
    restored = load_tables(dynamodb, tables, snapshot)
    log.info("DynamoDB (moto) on %s: %d items restored", moto_url, restored)

    simulator = None
    if settings.replicate_token:
        replicate = (settings.replicate_token, settings.replicate_base_url or REPLICATE_API_URL)
    else:
        simulator, simulator_url = _start_simulator(settings)
        replicate = (SIMULATOR_TOKEN, simulator_url)
        log.info("Replicate simulator on %s", simulator_url)

    os.environ.update(_function_environment(template, settings, tables, replicate))
    from jobsync.config import get_settings

    get_settings()  # a configuration error stops the stack here, not at the first request
    stage = websocket_stage(template)
    websocket = WebSocketApi(websocket_routes(template), stage)
    app = create_gateway(http_routes(template), authorizer(template), websocket, ROOT / "web")

    background = Background()
    background.every(0.25, "stream", _stream_pump(template, tables, moto_url))
    schedule = scheduled_functions(template)[0]
    background.at_rate(rate_seconds(str(resolve(schedule.expression, template))), "poller", _scheduled_poller(schedule))
    background.every(settings.snapshot_seconds, "snapshot", lambda: save_tables(dynamodb, tables, snapshot))

    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=settings.port, log_level="warning", ws="websockets-sansio", lifespan="off"
        )
    )
    original_startup = server.startup

    async def startup(*args: Any, **kwargs: Any) -> None:
        await original_startup(*args, **kwargs)
        print(_banner(settings, simulator is not None, stage), flush=True)

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn has shut down already and re-raises Ctrl-C for us to finish
    finally:
        log.info("stopping")
        background.close()
        saved = save_tables(dynamodb, tables, snapshot)
        log.info("saved %d items to %s", saved, snapshot)
        if simulator is not None:
            simulator.close()
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
