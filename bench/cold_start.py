"""Cold start: each function's import and first invocation against a boto3-only handler's, in fresh interpreters.

Lambda's cold start is the init (importing the handler's module) plus the first invocation, which pays
for whatever the import left for later (a boto3 client or resource, the settings model, a model built on
first use). So each run is a new `python -I` process that puts the function's folder and the layer on
sys.path (as Lambda puts /var/task and /opt/python), imports `app` and calls its handler once with the
function's sample event (events/<name>.json), against DynamoDB served by moto on the loopback interface
from this process, with the template's tables and the job the events name stored. The figure is the CPU
time of the child (time.process_time, user + system) from before the import to the handler's answer:
what the import and the first invocation cost, not what moto or a wait for a processor cost (moto runs
in this process; on a machine shared with other work, wall time also counts the waits). The
interpreter's own start-up is left out (it is the same for both). The import alone is reported too.

The baseline is a handler that imports boto3 and makes one DynamoDB client at import, as AWS's samples
do, and whose first invocation reads one item (GetItem) from the same moto. Both sides pay the same
loopback round trips; no request leaves the machine (the provider's, API Gateway's, SNS's, Lambda's and
Secrets Manager's URLs point at a local server that answers 401 to everything). A function whose first
invocation with its sample event needs the provider or another service (a sync, a provider check) is
invoked anyway: it pays for everything up to that refusal (httpx, its client, the request), which is its
own code's cost, and its answer says so in `first_answer`.

A second reference, the pydantic floor (PYDANTIC_FLOOR_HANDLER), is the boto3-only handler plus
`from pydantic import BaseModel` and one small model validated: what any function that validates its
settings with one pydantic model (config.py) pays at least. Its ratio is why 1.3x is out of reach for them.

Runs go round-robin (the baseline and the floor, then every function, RUNS times, and the baseline once
more), two processes at a time, after the .pyc files are written, as a deployed package ships them; each
function's ratio is the median of its runs over the median of the baseline's (the least of the runs was
tried: one lucky run of the baseline then set every ratio, 1.4-1.5x where medians said 1.2x).
"""

from __future__ import annotations

import base64
import compileall
import contextlib
import http.server
import itertools
import json
import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from bench.harness import LAYER, ROOT

RUNS = 3
PARALLEL = 2
EVENTS = ROOT / "events"
EVENT_TOKEN = "test-token"  # the bearer token the sample events carry
EVENT_JOB_ID = "r8-job-1"  # the job the sample events name
# The poller's remaining time: enough for one tick (services/polling.py's budget is 10 s), not for a second.
ONE_TICK_MS = 10_500
# The webhook secret the world's functions are configured with; the webhook's sample event is signed with it.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"jobsync-bench-cold-start-secret!").decode()
# What runs in the child. The event is read before the clock starts: Lambda's runtime has it (and json)
# before it calls the handler. The answer's status (or "ok" for a non-HTTP answer) is printed last.
_CHILD = (
    "import json, os, sys, time\n"
    "class NotInLambda:\n"
    "    blocked = frozenset(filter(None, os.environ.get('BENCH_NOT_IN_LAMBDA', '').split(',')))\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.partition('.')[0] in self.blocked:\n"
    "            raise ImportError(f'{name} is not in the Lambda runtime or the layer')\n"
    "sys.meta_path.insert(0, NotInLambda())\n"
    "class Context:\n"
    "    function_name = 'bench'\n"
    "    function_version = '$LATEST'\n"
    "    memory_limit_in_mb = 512\n"
    "    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:bench'\n"
    "    aws_request_id = 'bench-request'\n"
    "    log_group_name = log_stream_name = 'bench'\n"
    "    def get_remaining_time_in_millis(self):\n"
    "        return int(os.environ.get('BENCH_REMAINING_MS', '30000'))\n"
    "event_path = os.environ.get('BENCH_EVENT')\n"
    "event = json.loads(open(event_path).read()) if event_path else None\n"
    "wall, cpu = time.perf_counter(), time.process_time()\n"
    "sys.path[:0] = sys.argv[1:]\n"
    "import app\n"
    "imported = time.process_time() - cpu\n"
    "answer = 'not invoked'\n"
    "if event is not None:\n"
    "    result = app.lambda_handler(event, Context())\n"
    "    answer = result.get('statusCode', 'ok') if isinstance(result, dict) else 'ok'\n"
    "print(imported, time.process_time() - cpu, time.perf_counter() - wall, answer)\n"
)
BOTO3_HANDLER = '''"""A boto3-only handler: boto3 and one DynamoDB client, made at import; one GetItem an invocation."""
import os

import boto3

client = boto3.client("dynamodb")


def lambda_handler(event, context):
    key = {"job_id": {"S": event["job_id"]}}
    return {"statusCode": 200, "item": client.get_item(TableName=os.environ["JOBS_TABLE_NAME"], Key=key).get("Item")}
'''
# The floor of any function that validates its settings with pydantic (the house rule: config.py is one
# pydantic settings model): the boto3-only handler plus pydantic and one small model with a Field, validated
# once. Its ratio says how close to the boto3-only handler such a function can come at best.
PYDANTIC_FLOOR_HANDLER = '''"""The boto3-only handler plus pydantic and one small settings model validated."""
import os

import boto3
from pydantic import BaseModel, Field

client = boto3.client("dynamodb")


class Settings(BaseModel):
    jobs_table_name: str = Field(min_length=1)


settings = Settings(jobs_table_name=os.environ["JOBS_TABLE_NAME"])


def lambda_handler(event, context):
    key = {"job_id": {"S": event["job_id"]}}
    return {"statusCode": 200, "item": client.get_item(TableName=settings.jobs_table_name, Key=key).get("Item")}
'''
IMPORT_ONLY_HANDLER = "import boto3\n"


def functions() -> list[str]:
    return sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))


def _environment(world: dict[str, str]) -> dict[str, str]:
    """What a child sees: the deployment's variables (pointed at the world's moto), nothing of this shell's."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(world)
    env["BENCH_NOT_IN_LAMBDA"] = ",".join(not_in_lambda())
    return env


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized ("PyYAML==6.0" -> "pyyaml")."""
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if found is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", found.group(1)).lower()


@lru_cache(maxsize=1)
def not_in_lambda() -> tuple[str, ...]:
    """Top-level modules of this virtualenv that a deployed function cannot import.

    A function has the runtime's boto3 and the layer (layers/jobsync/requirements.txt) with what they
    require, nothing else. This virtualenv also has the command line's typer and rich, the test tools
    and moto; httpx imports click and rich when it finds them (for its own command line), which no
    deployed function would pay. So the measured imports see what Lambda has.
    """
    wanted = ["boto3"]
    for line in (LAYER / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            wanted.append(_name(line))
    allowed: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in allowed:
            continue
        allowed.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        wanted += [
            _name(r) for r in requires if "extra ==" not in r.partition(";")[2].replace('"', "").replace("'", "")
        ]
    blocked = {
        module
        for module, distributions in metadata.packages_distributions().items()
        if module.isidentifier() and module != "jobsync" and not any(_name(d) in allowed for d in distributions)
    }
    return tuple(sorted(blocked))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Every other service (the provider, API Gateway's management API, SNS, Lambda, Secrets Manager): a
    401 at once. A refused connection would do as well for the CPU, but the provider's client retries it
    with waits (seconds of wall time per run); a 401 is not retried."""

    def _refuse(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b'{"detail": "the cold-start bench answers nothing", "status": 401}'
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _refuse

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def world() -> Iterator[dict[str, str]]:
    """moto's DynamoDB on the loopback with the template's tables and the sample events' job; the variables.

    The job is stored through the layer's own store, ended (so reading it or its logs asks the provider
    nothing), as a sync would have stored it.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    from bench.harness import environ, environment, template, use_repo_paths
    from local.template import create_tables
    from tests.fakes.aws import REGION, TABLE_NAMES

    use_repo_paths()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    refusing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    try:
        moto_url = f"http://127.0.0.1:{port}"
        nobody = f"http://127.0.0.1:{refusing.server_address[1]}"
        values = environment(
            AWS_ENDPOINT_URL_DYNAMODB=moto_url,
            REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            JOBSYNC_API_TOKEN_HASHES=__import__("hashlib").sha256(EVENT_TOKEN.encode()).hexdigest(),
            REPLICATE_API_BASE_URL=f"{nobody}/v1",
            JOBSYNC_WEBSOCKET_URL=nobody.replace("http://", "ws://", 1),
            JOBSYNC_WEBSOCKET_MANAGEMENT_URL=nobody,
            AWS_ENDPOINT_URL_SNS=nobody,
            AWS_ENDPOINT_URL_LAMBDA=nobody,
            AWS_ENDPOINT_URL_SECRETSMANAGER=nobody,
        )
        client = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=moto_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        create_tables(client, template(), TABLE_NAMES.__getitem__)
        with environ(values):
            _store_the_events_job()
        yield values
    finally:
        refusing.shutdown()
        server.stop()


def _store_the_events_job() -> None:
    from jobsync import wiring
    from jobsync.domain.job import Job
    from jobsync.domain.status import JobStatus

    wiring.reset()
    job = Job(
        job_id=EVENT_JOB_ID,
        provider="replicate",
        status=JobStatus.COMPLETED,
        kind="training",
        model="bench/model",
        created_at="2026-11-30T10:00:00.000Z",
        started_at="2026-11-30T10:00:05.000Z",
        completed_at="2026-11-30T10:30:05.000Z",
        predict_time=1800.0,
    )
    wiring.job_store().save(job, None)
    wiring.reset()


_runs_made = itertools.count()


def event_file(folder: Path, name: str) -> Path:
    """`name`'s sample event for one run, made current where its time matters: the poller's scheduled at the
    tick due now (a tick more than an interval overdue is skipped: the first invocation would do nothing), the Replicate
    webhook signed now with the world's secret (else it is refused before any work, or its secret is asked
    of the provider), with an id of its own and a job of its own each run (else the second run is a replay,
    answered without work); and each WebSocket connection from an address of its own (else the sixth run
    meets the cap of connections per address and is refused early)."""
    sample = EVENTS / f"{name}.json"
    if name not in ("poller", "replicate_webhook", "ws_connect"):
        return sample
    event = json.loads(sample.read_text())
    now = datetime.now(timezone.utc)
    run = next(_runs_made)
    if name == "poller":
        # Ticks fall on multiples of the poll interval: scheduled at the last one, the invocation runs one
        # tick at once (scheduled now, it would sleep until the next multiple). Its context says less time
        # is left than the next tick needs (ONE_TICK_MS), so it stops after the first instead of sleeping.
        from bench.harness import environment

        interval = int(environment()["SIMPLETUNER_JOB_POLL_INTERVAL"])
        tick = datetime.fromtimestamp(int(now.timestamp()) // interval * interval, timezone.utc)
        event["scheduled_time"] = tick.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif name == "ws_connect":
        context = event["requestContext"]
        context["connectionId"] = f"{context['connectionId']}{run}"
        context["identity"]["sourceIp"] = f"198.51.{run // 250 % 250}.{run % 250 + 1}"
    else:
        from bench.harness import use_repo_paths

        use_repo_paths()
        from jobsync.domain.webhook_signature import sign_webhook

        body = json.loads(event["body"])
        body["id"] = f"{body['id'][:-6]}{run:06d}"
        event["body"] = json.dumps(body)
        headers = event["headers"]
        headers["webhook-id"] = f"{headers['webhook-id']}{run}"
        headers["webhook-timestamp"] = str(int(now.timestamp()))
        headers["webhook-signature"] = sign_webhook(
            WEBHOOK_SECRET, headers["webhook-id"], headers["webhook-timestamp"], event["body"]
        )
    path = folder / f"{name}-{run}.json"
    path.write_text(json.dumps(event))
    return path


def run_once(world_env: dict[str, str], event: Path | None, *paths: Path) -> tuple[float, float, float, str]:
    """Import CPU, import + first invocation CPU, wall seconds and the answer, in a fresh interpreter."""
    env = _environment(world_env)
    if event is not None:
        env["BENCH_EVENT"] = str(event)
        if event.name.startswith("poller"):
            env["BENCH_REMAINING_MS"] = str(ONE_TICK_MS)
    answer = subprocess.run(
        [sys.executable, "-I", "-c", _CHILD, *map(str, paths)],
        env=env,
        cwd=paths[0],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"running {paths[0]}/app.py failed: {answer.stderr.strip()[-800:]}")
    imported, total, wall, status = answer.stdout.strip().splitlines()[-1].split(maxsplit=3)
    return float(imported), float(total), float(wall), status


def measure(
    runs: int = RUNS, others: dict[str, Path] | None = None, only: list[str] | None = None
) -> dict[str, dict[str, float | str]]:
    """Function -> {"ratio", "cpu_ms", "import_cpu_ms", "import_ratio", "wall_ms", "first_answer"} (medians);
    also "(boto3 handler)", "(import boto3 only)" and "(pydantic floor)" (PYDANTIC_FLOOR_HANDLER, with its
    "ratio" to the boto3-only handler's).

    `others` (label -> a checkout's root, with its functions/ and layers/jobsync/) are measured in the same
    run, round-robin with this one, as "<function>@<label>": a before and after side by side, with
    "paired_change_ms" (this tree's CPU less theirs, run by run, the median). `only`: these functions, not all.
    """
    trees = {"": ROOT, **(others or {})}
    for root in trees.values():
        compileall.compile_dir(str(root / "layers" / "jobsync" / "jobsync"), quiet=1)
        compileall.compile_dir(str(root / "functions"), quiet=1)
    names = only or functions()
    with tempfile.TemporaryDirectory(prefix="jobsync-bench-") as folder, world() as world_env:
        baseline, import_only = Path(folder) / "boto3_handler", Path(folder) / "import_only"
        pydantic_floor = Path(folder) / "pydantic_floor"
        baseline_event = Path(folder) / "baseline_event.json"
        baseline_event.write_text(json.dumps({"job_id": EVENT_JOB_ID}))
        for path, text in (
            (baseline, BOTO3_HANDLER),
            (import_only, IMPORT_ONLY_HANDLER),
            (pydantic_floor, PYDANTIC_FLOOR_HANDLER),
        ):
            path.mkdir()
            (path / "app.py").write_text(text)
        run_once(world_env, baseline_event, baseline)  # its .pyc
        run_once(world_env, baseline_event, pydantic_floor)
        # Round-robin: the baseline and the floor, then every function (of every tree), RUNS times, and the
        # baseline once more. Two processes at a time (CPU time does not count the waits for a processor that
        # this adds).
        to_do: list[tuple[str, str | None, tuple[Path, ...]]] = []
        for _ in range(runs):
            to_do.append(("(boto3 handler)", "(baseline)", (baseline,)))
            to_do.append(("(pydantic floor)", "(baseline)", (pydantic_floor,)))
            # A function's trees one after the other: a before and an after meet the same load (a tree after
            # tree order left 27 functions between them, and a load that changed in between set the figure).
            to_do += [
                (
                    f"{name}@{label}" if label else name,
                    name,
                    (root / "functions" / name, root / "layers" / "jobsync"),
                )
                for name in names
                for label, root in trees.items()
                if (root / "functions" / name / "app.py").exists()
            ]
        to_do.append(("(boto3 handler)", "(baseline)", (baseline,)))
        to_do += [("(import boto3 only)", None, (import_only,))] * runs

        def run_one(name: str | None, paths: tuple[Path, ...]) -> tuple[float, float, float, str]:
            event = baseline_event if name == "(baseline)" else event_file(Path(folder), name) if name else None
            return run_once(world_env, event, *paths)

        times: dict[str, list[tuple[float, float, float, str]]] = {}
        with ThreadPoolExecutor(PARALLEL) as pool:
            answers = pool.map(lambda entry: run_one(entry[1], entry[2]), to_do)
            for (name, _, _), measured in zip(to_do, answers, strict=True):
                times.setdefault(name, []).append(measured)
    results: dict[str, dict[str, float | str]] = {
        name: {
            "import_cpu_ms": 1000 * statistics.median(run[0] for run in runs_of),
            "cpu_ms": 1000 * statistics.median(run[1] for run in runs_of),
            "wall_ms": 1000 * statistics.median(run[2] for run in runs_of),
            "first_answer": runs_of[-1][3],
        }
        for name, runs_of in times.items()
    }
    base = results["(boto3 handler)"]
    for name, result in results.items():
        if not name.startswith("(") or name == "(pydantic floor)":
            result["ratio"] = float(result["cpu_ms"]) / float(base["cpu_ms"])
            result["import_ratio"] = float(result["import_cpu_ms"]) / float(base["import_cpu_ms"])
        if "@" in name:
            # This tree's run less the other tree's, round by round (the two ran side by side, under the same
            # load), then the median: steadier than the difference of two medians on a busy machine.
            this_tree = times[name.partition("@")[0]]
            result["paired_change_ms"] = 1000 * statistics.median(
                ours[1] - theirs[1] for ours, theirs in zip(this_tree, times[name], strict=True)
            )
    return results


def _checkout(revision: str, folder: Path) -> Path:
    """`revision`'s functions/ and layers/ in `folder` (git archive: the working tree is not touched)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "functions", "layers"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.cold_start [--before REVISION] [--runs N]`: every function's ratio, and with --before
    that revision's beside it, measured in the same run, and the change: the median of the paired differences."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=main.__doc__)
    parser.add_argument("--before", help="a git revision to measure side by side with the working tree")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("functions", nargs="*", help="these functions only (default: all)")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jobsync-before-") as folder:
        others = {"before": _checkout(arguments.before, Path(folder))} if arguments.before else {}
        load = os.getloadavg()[0]
        results = measure(arguments.runs, others, arguments.functions or None)
    base = results["(boto3 handler)"]
    print(
        f"boto3-only handler: {float(base['cpu_ms']):.0f} ms (import {float(base['import_cpu_ms']):.0f} ms); "
        f"import boto3 alone {float(results['(import boto3 only)']['import_cpu_ms']):.0f} ms; "
        f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    floor = results["(pydantic floor)"]
    print(
        f"pydantic floor (the boto3-only handler + pydantic + one small model validated): "
        f"{float(floor['cpu_ms']):.0f} ms, {float(floor['ratio']):.2f}x: no function that validates its settings "
        "with pydantic can do better"
    )
    columns = ["", "@before"] if others else [""]
    header = "function            " + "".join(
        f"{'ms' + suffix:>16}{'ratio' + suffix:>14}{'import' + suffix:>15}" for suffix in columns
    )
    print(header + ("   change (paired)" if others else "") + "  first answer")
    for name in arguments.functions or functions():
        row = f"{name:20}"
        for suffix in columns:
            result = results.get(name + suffix)
            row += (
                f"{float(result['cpu_ms']):16.0f}{float(result['ratio']):13.2f}x{float(result['import_ratio']):14.2f}x"
                if result
                else f"{'—':>16}{'—':>14}{'—':>15}"
            )
        if others:
            before = results.get(name + "@before")
            row += f"{float(before['paired_change_ms']):+15.0f} ms" if before else f"{'—':>18}"
        print(row + f"  {results[name]['first_answer']}")


if __name__ == "__main__":
    main()
