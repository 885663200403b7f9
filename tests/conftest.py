"""Shared fixtures: AWS under moto with the tables from template.yaml, a fake Replicate, real events."""

from __future__ import annotations

import copy
import functools
import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local import lambda_runtime

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
API_TOKEN = "test-api-token"
REGION = "us-east-1"


@dataclass
class FixedLambdaContext(lambda_runtime.LambdaContext):
    """Lambda's context whose remaining time stays what the test set, however long the handler takes.

    With the invocation clock frozen (`invocation_clock`), a handler's deadline is exactly
    `remaining_ms` from its start: no test depends on how fast moto or the machine is.
    """

    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def LambdaContext(function_name: str = "jobsync-test", remaining_ms: int = 60_000) -> FixedLambdaContext:
    """Lambda's context for a function with `remaining_ms` left (and still left later: see FixedLambdaContext)."""
    return FixedLambdaContext(function_name=function_name, remaining_ms=remaining_ms)


class FrozenClock:
    """A stand-in for the `time` module whose monotonic clock moves only when a test moves it."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def invocation_clock(monkeypatch) -> FrozenClock:
    """The clock of jobsync.deadline, frozen: an invocation's time runs out only when a test says so."""
    from jobsync import deadline

    clock = FrozenClock()
    monkeypatch.setattr(deadline, "time", clock)
    return clock


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def load_handler(function: str):
    """functions/<function>/app.py's lambda_handler, loaded the way the local stack loads it."""
    return lambda_runtime.load_handler(f"functions/{function}/")


@pytest.fixture
def aws_env(monkeypatch, invocation_clock, handed_off):
    """Environment for every function, pointing at moto and the fake Replicate.

    No test hands work to Lambda: hand-offs are recorded (`handed_off`)."""
    from tests.fakes.aws import function_environment
    from tests.fakes.replicate import BASE_URL

    values = {
        **function_environment(
            api_token=API_TOKEN,
            replicate_token="r8_test_token",
            replicate_base_url=BASE_URL,
            management_url="https://ws.example.test/prod",
            metrics_namespace="jobsync-test",
        ),
        "JOBSYNC_HISTORY_IMPORTER_FUNCTION": "jobsync-test-history-importer",
    }
    for name in (
        "REPLICATE_WEBHOOK_SECRET",
        "JOBSYNC_WEBHOOK_URL",
        "SIMPLETUNER_JOB_POLL_INTERVAL",
        "JOBSYNC_CONFIG",
        "JOBSYNC_POLLING_ENABLED",
        "JOBSYNC_HARDWARE_MAP",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_LAMBDA",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    _secrets_read_through_one_boto3_session(monkeypatch)
    _httpx_clients_share_one_default_ssl_context(monkeypatch)
    from jobsync import wiring

    wiring.reset()
    yield values
    wiring.reset()


@functools.lru_cache(maxsize=1)
def _boto3_session() -> Any:
    import boto3

    return boto3.session.Session()


def _secrets_read_through_one_boto3_session(monkeypatch) -> None:
    """Powertools' Secrets Manager provider, dropped at every wiring.reset(), builds its client in a new boto3
    session: endpoint data and service models loaded again each test that reads a secret (about 0.1 CPU-s).
    Here its clients come from one session (each still a new client, under the test's moto)."""
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

    init = functools.partialmethod(SecretsProvider.__init__, boto3_session=_boto3_session())
    monkeypatch.setattr(SecretsProvider, "__init__", init)


def _httpx_clients_share_one_default_ssl_context(monkeypatch) -> None:
    """Each httpx client (the provider's, a webhook delivery's: new after every wiring.reset()) loads the CA
    bundle into a new SSL context, 50-130 ms of CPU; the tests' clients share one, built the same way (an SSL
    context serves any number of clients; the fakes answer before any TLS connection would open anyway)."""
    from httpx._transports import default

    create = default.create_ssl_context

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is True and cert is None and trust_env:
            return _default_ssl_context(create)
        return create(verify=verify, cert=cert, trust_env=trust_env)

    monkeypatch.setattr(default, "create_ssl_context", create_ssl_context)


@functools.lru_cache(maxsize=1)
def _default_ssl_context(create: Any) -> Any:
    return create(verify=True, cert=None, trust_env=True)


class HandOffs:
    """Hand-offs to other functions (jobsync.background), recorded instead of sent to Lambda.

    `calls` keeps every (function name, payload) in order; `drain` runs the ones waiting for a
    function through its handler, as Lambda's async invoke would, until none waits (a run may hand
    off its successor). Set `refusing` to make every hand-off fail as a Lambda outage would.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.waiting: list[tuple[str, dict[str, Any]]] = []
        self.refusing = False

    def __call__(self, function_name: str, payload: bytes) -> None:
        if self.refusing:
            raise RuntimeError("Lambda refused the invoke")
        call = (function_name, json.loads(payload))
        self.calls.append(call)
        self.waiting.append(call)

    def to(self, function_name: str) -> list[dict[str, Any]]:
        """The payloads handed to `function_name` so far, oldest first."""
        return [payload for name, payload in self.calls if name == function_name]

    def drain(self, function_name: str, folder: str, *, limit: int = 100, remaining_ms: int = 60_000) -> int:
        """Run every waiting hand-off to `function_name` with functions/<folder>'s handler; how many ran."""
        handler = load_handler(folder)
        ran = 0
        while True:
            found = next((call for call in self.waiting if call[0] == function_name), None)
            if found is None:
                return ran
            if ran >= limit:
                raise AssertionError(f"{function_name} kept handing off after {limit} runs")
            self.waiting.remove(found)
            handler(found[1], LambdaContext(function_name=function_name, remaining_ms=remaining_ms))
            ran += 1


@pytest.fixture
def handed_off(monkeypatch) -> HandOffs:
    """What the code under test handed to other functions through jobsync.background."""
    from jobsync import background

    recorder = HandOffs()
    monkeypatch.setattr(background, "invoker", recorder)
    return recorder


@functools.lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    from local.template import load_template

    return load_template()  # parsing it takes a second: once per test process


# DynamoDB applies each request atomically; moto, called from several threads, interleaves them
# (two conditional writes could both pass their condition). One request at a time, as in AWS.
_one_moto_request_at_a_time = threading.RLock()


@pytest.fixture
def tables(aws_env, monkeypatch):
    """DynamoDB under moto, with the tables exactly as template.yaml declares them.

    Each test gets a fresh moto (no item, stream record or secret of another test), but the
    boto3 session and its loaded service models are kept across tests (moto would otherwise
    make every test load them again), and the tables are created once per test process and
    copied, empty, into each test's moto.
    """
    from moto import mock_aws
    from moto.core.config import default_user_config
    from moto.core.models import botocore_stubber

    from local.dynamodb_server import _speed_up_moto, _undo_instead_of_copies

    process_request = botocore_stubber.process_request

    def atomically(request):
        with _one_moto_request_at_a_time:
            return process_request(request)

    monkeypatch.setattr(botocore_stubber, "process_request", atomically)
    _motos_requests_library_routes_built_once(monkeypatch)
    names = {"JobsTable": "jobs", "ConnectionsTable": "connections", "StateTable": "state", "TokensTable": "tokens"}
    core = {**default_user_config["core"], "reset_boto3_session": False}
    with mock_aws(config={"core": core}):
        _create_tables(names)
        # moto as the local stack's server runs it (local/dynamodb_server.py; the same answers, compared there):
        # a failed transaction is undone item by item instead of moto backing up every table it touches with a
        # deep copy, and data answers are written as JSON instead of by walking botocore's model value by value
        # (the two took most of the CPU of a test that stores a few hundred jobs). In a test process that ran
        # the local server before, moto was patched so anyway: now every handler test runs against the same moto.
        _speed_up_moto()
        _undo_instead_of_copies()
        yield names


def _motos_requests_library_routes_built_once(monkeypatch) -> None:
    """Each mock_aws start registers one `responses` route per AWS endpoint pattern and HTTP method (about 1,300,
    for code that calls AWS through the requests library), each built anew: 3-4 ms of a test's setup. The same
    routes (method, pattern, moto's callback) are built once per process and registered again each start."""
    from moto.core import models

    build = models.CallbackResponse

    def route(method: str, url: Any, callback: Any, **options: Any) -> Any:
        key = (method, url, callback, tuple(sorted(options.items())))
        if key not in _moto_routes:
            _moto_routes[key] = build(method=method, url=url, callback=callback, **options)
        return _moto_routes[key]

    monkeypatch.setattr(models, "CallbackResponse", route)


_moto_routes: dict[tuple[Any, ...], Any] = {}
_empty_tables: dict[str, Any] = {}


def _create_tables(names: dict[str, str]) -> None:
    """The template's tables in the current moto: created through the API the first time, then copied."""
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from local.template import create_tables

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    if _empty_tables.get("names") == names:
        backend.tables = copy.deepcopy(_empty_tables["tables"])
        return
    create_tables(boto3.client("dynamodb", region_name=REGION), _template(), names.__getitem__)
    _empty_tables.update(names=dict(names), tables=copy.deepcopy(backend.tables))


@pytest.fixture
def replicate(aws_env):
    """The fake Replicate, answering every request of the provider client."""
    import respx

    from tests.fakes.replicate import BASE_URL, FakeReplicate

    fake = FakeReplicate()
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=BASE_URL).mock(side_effect=fake)
        yield fake


class Api:
    """Calls a function's handler with its events/ sample event, changed as a test needs."""

    def __init__(self) -> None:
        self.context = LambdaContext()

    def call(
        self,
        function: str,
        *,
        path: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        authenticated: bool = True,
        event: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        event = copy.deepcopy(event or load_event(function))
        if path is not None:
            event["pathParameters"] = path
        if query is not None:
            event["queryStringParameters"] = query
        if body is not None:
            event["body"] = body if isinstance(body, str) else json.dumps(body)
            event["isBase64Encoded"] = False
        if headers is not None:
            event["headers"] = headers
        # Each protected handler checks the bearer token itself: the bootstrap (admin) token, or none at all.
        event["headers"] = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "authorization"}
        if authenticated:
            event["headers"]["authorization"] = f"Bearer {API_TOKEN}"
        answer = load_handler(function)(event, self.context)
        return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None


@pytest.fixture
def api(tables, replicate) -> Api:
    return Api()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that drove a local stack shows the end of that stack's log (its own output is in a file)."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    from tests.stack_process import LocalStack

    stacks = {id(value): value for value in getattr(item, "funcargs", {}).values() if isinstance(value, LocalStack)}
    for stack in stacks.values():
        tail = "\n".join(stack.log().splitlines()[-40:])
        report.sections.append((f"stack log, last 40 lines of {stack.log_path}", tail))


# Where the long tests are: they start local stacks (a few seconds each, and a sync of the simulator's history),
# a browser, or run for a minute or more.
_LONG = ("tests/e2e/", "tests/browser/", "tests/soak/")


def pytest_collection_modifyitems(config, items):
    """The modules of tests/e2e, tests/browser and tests/soak first, each module's tests in their order.

    `make test` runs `--dist loadfile --no-loadscope-reorder`: xdist hands each worker whole files in this
    order, so the long ones start first and the many short files even out the end. (Grouping with
    `--dist loadgroup` would be finer, but pytest 9 ignores the node ids xdist 3.8 rewrites for it.)
    """
    items.sort(key=lambda item: not item.path.relative_to(ROOT).as_posix().startswith(_LONG))


@pytest.fixture
def plain_ctrl_c():
    """Ctrl-C as a terminal's Python has it (KeyboardInterrupt), whatever this process inherited: a job a
    non-interactive shell starts in the background begins with SIGINT ignored. Put back afterwards."""
    inherited = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)
