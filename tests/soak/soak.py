"""The soak: the local stack through hundreds of jobs, provider faults, webhook storms and a kill -9.

One bounded run on loopback (`run_soak`):

- the soak's simulator (tests/soak/simulator.py, its own process) runs `jobs` trainings to the end,
  started over `window` seconds, while a share of its answers fail (`fault_rate`, every fault kind
  but timeouts);
- its webhooks go through a relay (tests/soak/relay.py) that delivers them late and out of order,
  half of them twice at once, and a tenth of them also signed wrongly;
- clients list jobs and metrics, read inline progress, and run two syncs at once every so often;
- midway the stack is killed with SIGKILL and started again over the same state folder;
- WebSocket clients connect after the restart and listen to the end.

At the end every job the simulator has must be stored with its status, timestamps and cost, the metrics
must equal the listed jobs, no request may have met a 5xx but while the stack was down, every wrongly
signed webhook must have been answered 401, every WebSocket client must have heard the final status of
each job that ended after it connected, and the stack's RSS must have stayed under 300 MB. `SoakResult`
holds the figures, its `line` says them in one line and its `problems` what failed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

from jobsync.domain.cost import price_per_second
from jobsync.providers.replicate_mapping import STATUS_MAP
from tests.soak.relay import Attempt, WebhookRelay
from tests.stack_process import PATIENCE_SECONDS, REQUEST_SECONDS, ROOT, LocalStack, free_port, fresh_source_ip

TOKEN = "soak-token"
SIMULATOR_TOKEN = "r8_soak_simulator"
SECRET = "whsec_" + base64.b64encode(b"the-soak-tests-webhook-secret-32").decode()
RSS_LIMIT_MB = 300.0
ACTIVE = {"pending", "uploading", "queued", "running"}
PRICE = price_per_second("gpu-h100")  # the stack's default hardware; the soak sets no hardware map


@dataclass(frozen=True)
class SoakPlan:
    jobs: int = 300
    window: float = 100.0  # real seconds over which the trainings start
    # The trainings' scripts play 20 times faster than real time: each runs 0.5 to 7.6 s, still sending its
    # start and completed webhooks, and a `logs` one every 5 real seconds while it runs: 782 webhooks for
    # 300 trainings, where speed 10 made 1,023 (the same, plus twice the mid-run `logs` updates), which a
    # loaded machine spent a minute catching up on. Shorter runs also put more completed webhooks ahead of
    # their start in the relay's shuffle.
    speed: float = 20.0
    fault_rate: float = 0.2
    kill_at: float = 0.5  # share of the window after which the stack is killed
    clients: int = 3
    seed: int = 7
    budget: float = 300.0  # seconds the whole run may take: every wait stops at it


@dataclass
class Call:
    what: str
    started: float
    ended: float
    status: int | None  # None: no answer
    said: str = ""  # a 5xx answer's body (its start), so that a failed run says what failed


@dataclass
class SoakResult:
    plan: SoakPlan
    seconds: float = 0.0
    jobs: int = 0  # every job the simulator has, its history included
    trainings_ended: int = 0
    matched: int = 0
    metrics_jobs: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # 5xx met while the stack was up
    down_seconds: float = 0.0
    webhooks: int = 0
    duplicated: int = 0
    forged: int = 0
    forged_refused: int = 0
    deliveries: int = 0
    heard: int = 0
    to_hear: int = 0
    max_rss_mb: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        return (
            f"soak: {self.jobs} jobs ({self.trainings_ended} trainings run to the end), {self.seconds:.0f} s; "
            f"provider answers failing {self.plan.fault_rate:.0%}; "
            f"{self.webhooks} webhooks → {self.deliveries} deliveries ({self.duplicated} duplicated, "
            f"{self.forged_refused}/{self.forged} wrongly signed answered 401); "
            f"{self.calls['sync']} syncs, {self.calls['list'] + self.calls['metrics']} list/metrics reads, "
            f"{self.calls['progress']} inline progress reads; "
            f"killed -9 and down {self.down_seconds:.1f} s; 5xx while up: {len(self.server_errors)}; "
            f"stored = simulator for {self.matched}/{self.jobs} jobs; metrics = listed ({self.metrics_jobs} jobs); "
            f"{self.plan.clients} WebSocket clients heard {self.heard}/{self.to_hear} final statuses; "
            f"max RSS {self.max_rss_mb:.0f} MB"
            + (f"; PROBLEMS: {len(self.problems)}" if self.problems else "; all checks passed")
        )


# One client, its connections kept, for all of the soak's own requests: `httpx.request` builds a client (and
# its TLS context) each time, 30 ms of CPU a request that a loaded machine would take from the stack. Idle
# connections are dropped before uvicorn's 5 s keep-alive would close them under a request.
def _client() -> httpx.Client:
    return httpx.Client(timeout=REQUEST_SECONDS, limits=httpx.Limits(keepalive_expiry=2.0))


class Recorder:
    """Every request the soak's clients make, with its time and answer."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._client = _client()  # httpx's clients are thread-safe

    def close(self) -> None:
        self._client.close()

    def request(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        started = time.time()
        try:
            answer = self._client.request(method, url, **kwargs)
        except httpx.HTTPError:
            answer = None
        with self._lock:
            status = answer.status_code if answer is not None else None
            said = answer.text[:300] if answer is not None and answer.status_code >= 500 else ""
            self.calls.append(Call(what, started, time.time(), status, said))
        return answer


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process `pid` has used so far; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command's closing parenthesis: utime and stime are the 12th and 13th fields, in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{fraction or 0}")


class Simulator:
    """The soak's simulator process and reads of its own state through its API (retried through its faults)."""

    def __init__(self, workdir: Path, plan: SoakPlan, webhook_url: str, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._log = (workdir / "simulator.log").open("w")
        self._client = _client()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.soak.simulator",
                f"--port={self.port}",
                f"--token={SIMULATOR_TOKEN}",
                f"--webhook-secret={SECRET}",
                f"--webhook-url={webhook_url}",
                f"--jobs={plan.jobs}",
                f"--window={plan.window}",
                f"--speed={plan.speed}",
                f"--fault-rate={plan.fault_rate}",
                f"--fault-seed={plan.seed}",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "jobsync")])},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.get("/account")  # up (answering, faults aside)

    def get(self, path: str) -> Any:
        deadline = time.monotonic() + PATIENCE_SECONDS
        url = path if path.startswith("http") else f"{self.url}{path}"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the soak simulator exited with {self.process.returncode}")
            try:
                answer = self._client.get(url, headers={"Authorization": f"Bearer {SIMULATOR_TOKEN}"}, timeout=10)
                if answer.status_code == 200:
                    return answer.json()
            except (httpx.HTTPError, ValueError):
                pass  # an injected fault: asked again
            if time.monotonic() > deadline:
                raise RuntimeError(f"the soak simulator did not answer GET {path}")
            time.sleep(0.05)

    def jobs(self) -> dict[str, dict[str, Any]]:
        """Every job the simulator has now, by id (the predictions list holds trainings too)."""
        found: dict[str, dict[str, Any]] = {}
        page: dict[str, Any] = self.get("/predictions")
        while True:
            found.update((job["id"], job) for job in page["results"])
            if not page["next"]:
                return found
            page = self.get(page["next"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self._client.close()


class Listeners:
    """WebSocket clients on an event loop of their own, each from its own loopback address."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.connected_at: list[float] = []
        self.heard: list[list[dict[str, Any]]] = [[] for _ in range(count)]
        self._stop: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="soak-websockets", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(PATIENCE_SECONDS) or self._error is not None:
            raise RuntimeError(f"the WebSocket clients did not connect: {self._error!r}")

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            sockets = []
            for _ in range(self.count):
                sockets.append(
                    await websockets.connect(self.url, local_addr=(fresh_source_ip(), 0), open_timeout=PATIENCE_SECONDS)
                )
                self.connected_at.append(time.time())
        except BaseException as error:  # noqa: BLE001 - reported by start()
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        readers = [
            asyncio.create_task(self._listen(socket, heard)) for socket, heard in zip(sockets, self.heard, strict=True)
        ]
        await self._stop.wait()
        for socket in sockets:
            await socket.close()
        await asyncio.gather(*readers, return_exceptions=True)

    @staticmethod
    async def _listen(socket: Any, heard: list[dict[str, Any]]) -> None:
        async for message in socket:
            heard.append(json.loads(message))


class Activity:
    """The soak's clients: lists and metrics, inline progress, two syncs at once now and then; and the
    stack's RSS, sampled."""

    def __init__(self, stack: LocalStack, recorder: Recorder, seed: int) -> None:
        self.stack = stack
        self.recorder = recorder
        self.max_rss_mb = 0.0
        self.stack_cpu: dict[int, float] = {}  # the stack's CPU seconds, by process (it is restarted once)
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=loop, name=f"soak-{loop.__name__}", daemon=True)
            for loop in (self._lists, self._progress, self._syncs, self._memory)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, wait: bool = True) -> None:
        """No new requests; with `wait`, the ones in flight have ended too."""
        self._stop.set()
        if not wait:
            return
        for thread in self._threads:
            thread.join(timeout=REQUEST_SECONDS)

    def _api(self, what: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        return self.recorder.request(what, method, f"{self.stack.url}{path}", headers=self.stack.headers(), **kwargs)

    def _lists(self) -> None:
        while not self._stop.wait(0.5):
            self._api("list", "GET", "/api/cloud/jobs", params={"limit": "100"})
            self._api("metrics", "GET", "/api/cloud/metrics")

    def _progress(self) -> None:
        while not self._stop.wait(1.0):
            running = self._api("list", "GET", "/api/cloud/jobs", params={"status": "running", "limit": "50"})
            jobs = running.json()["jobs"] if running is not None and running.status_code == 200 else []
            if jobs:
                job_id = self._rng.choice(jobs)["job_id"]
                self._api("progress", "GET", f"/api/cloud/jobs/{job_id}/inline-progress")

    def _syncs(self) -> None:
        """Two syncs at once, at the start (the first ones: the history comes in) and every 15 s."""
        while True:
            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(lambda _: self._api("sync", "POST", "/api/cloud/jobs/sync"), range(2)))
            if self._stop.wait(15.0):
                return

    def _memory(self) -> None:
        while not self._stop.wait(0.5):
            process = self.stack.process
            if process is not None and process.poll() is None:
                self.max_rss_mb = max(self.max_rss_mb, _rss_mb(process.pid))
                self.stack_cpu[process.pid] = max(self.stack_cpu.get(process.pid, 0.0), _cpu_seconds(process.pid))


def _stored_jobs(stack: LocalStack, recorder: Recorder) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        answer = recorder.request("list", "GET", f"{stack.url}/api/cloud/jobs", headers=stack.headers(), params=params)
        if answer is None or answer.status_code != 200:
            raise RuntimeError(f"listing the jobs failed: {answer.status_code if answer else 'no answer'}")
        jobs += answer.json()["jobs"]
        cursor = answer.json()["next_cursor"]
        if not cursor:
            return jobs


def _differences(truth: dict[str, dict[str, Any]], stored: dict[str, dict[str, Any]]) -> list[str]:
    """How each stored job differs from the simulator's own, job by job."""
    differences = []
    for job_id, job in truth.items():
        mine = stored.get(job_id)
        if mine is None:
            differences.append(f"{job_id}: not stored")
            continue
        predict_time = (job.get("metrics") or {}).get("predict_time")
        expected = {
            "status": STATUS_MAP[job["status"]].value,
            "created_at": job["created_at"],
            "started_at": job["started_at"],
            "completed_at": job["completed_at"],
        }
        for name, value in expected.items():
            if mine[name] != value:
                differences.append(f"{job_id}: {name} {mine[name]!r}, the simulator says {value!r}")
        cost = None if predict_time is None else round(predict_time * PRICE, 6)
        if (cost is None) != (mine["cost_usd"] is None) or (cost is not None and abs(cost - mine["cost_usd"]) > 1e-6):
            differences.append(f"{job_id}: cost {mine['cost_usd']!r}, the simulator's predict_time makes {cost!r}")
    return differences


def _converge(
    stack: LocalStack, simulator: Simulator, recorder: Recorder, deadline: float
) -> tuple[dict, dict, list[str]]:
    """The simulator's jobs and the stored ones once they agree (a sync every few seconds helps the poller
    along), or as they are at `deadline` (time.monotonic())."""
    last_sync = 0.0
    while True:
        truth = simulator.jobs()
        stored = {job["job_id"]: job for job in _stored_jobs(stack, recorder)}
        differences = _differences(truth, stored)
        if not differences or time.monotonic() > deadline:
            return truth, stored, differences
        if time.monotonic() - last_sync > 5:
            recorder.request("sync", "POST", f"{stack.url}/api/cloud/jobs/sync", headers=stack.headers())
            last_sync = time.monotonic()
        time.sleep(1.0)


def _metrics_problems(stack: LocalStack, recorder: Recorder) -> tuple[int, list[str]]:
    """The metrics against every listed job, read while nothing changed in between."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        before = httpx.get(f"{stack.url}/api/cloud/metrics", headers=stack.headers(), timeout=REQUEST_SECONDS).json()
        jobs = _stored_jobs(stack, recorder)
        after = httpx.get(f"{stack.url}/api/cloud/metrics", headers=stack.headers(), timeout=REQUEST_SECONDS).json()
        if before == after or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    by_status = Counter(job["status"] for job in jobs)
    expected = {
        "job_count": len(jobs),
        "active_count": sum(job["status"] in ACTIVE for job in jobs),
        "jobs_by_status": {status: by_status.get(status, 0) for status in after["jobs_by_status"]},
    }
    problems = [
        f"metrics {name} {after[name]!r}, the jobs say {value!r}"
        for name, value in expected.items()
        if after[name] != value
    ]
    if set(by_status) - set(after["jobs_by_status"]):
        problems.append(f"metrics count no {sorted(set(by_status) - set(after['jobs_by_status']))}")
    cost = sum(job["cost_usd"] or 0 for job in jobs)
    if abs(after["total_cost_usd"] - cost) > 1e-5 * max(1, len(jobs)):
        problems.append(f"metrics total_cost_usd {after['total_cost_usd']}, the jobs say {cost}")
    return len(jobs), problems


def _judge_requests(
    result: SoakResult, calls: list[Call], attempts: list[Attempt], down_from: float, up_at: float
) -> None:
    """No 5xx but while the stack was down (a request that started or ended then may meet anything)."""

    def while_up(started: float, ended: float) -> bool:
        return ended < down_from or started > up_at

    result.calls = Counter(call.what for call in calls)
    result.server_errors = [
        f"{call.what} {call.status}"
        for call in calls
        if call.status and call.status >= 500 and while_up(call.started, call.ended)
    ] + [
        f"webhook {attempt.status}"
        for attempt in attempts
        if attempt.status and attempt.status >= 500 and while_up(attempt.started, attempt.started)
    ]
    if result.server_errors:
        result.problems.append(f"5xx while the stack was up: {Counter(result.server_errors)}")
        said = [
            f"{call.what} {call.status}: {call.said}"
            for call in calls
            if call.status and call.status >= 500 and while_up(call.started, call.ended)
        ]
        result.problems += said[:5]


def _judge_webhooks(result: SoakResult, relay: WebhookRelay) -> None:
    """Every wrongly signed delivery answered 401, every genuine one taken (200) in the end."""
    attempts = relay.attempts()
    result.webhooks, result.duplicated, result.forged = (
        relay.counts.received,
        relay.counts.duplicated,
        relay.counts.forged,
    )
    result.deliveries = len(attempts)
    if relay.pending:
        result.problems.append(f"{relay.pending} webhook deliveries still pending")
    forged_answers = [attempt.status for attempt in attempts if attempt.forged and attempt.status is not None]
    result.forged_refused = sum(status == 401 for status in forged_answers)
    if result.forged_refused != result.forged or len(forged_answers) != result.forged:
        result.problems.append(f"wrongly signed webhooks: {result.forged}, answered {Counter(forged_answers)}")
    genuine = Counter(attempt.status for attempt in attempts if not attempt.forged)
    if any(status is not None and status != 200 and status < 500 for status in genuine):
        result.problems.append(f"genuine webhooks answered {genuine}")


def _finals_to_hear(listeners: Listeners, truth: dict[str, dict[str, Any]]) -> list[tuple[int, str, str, bool]]:
    """(client, job id, final status, heard) for every job that ended after that client connected."""
    expected = []
    for number, (connected, heard) in enumerate(zip(listeners.connected_at, listeners.heard, strict=True)):
        finals = {(message.get("job_id"), message.get("status")) for message in list(heard)}
        for job_id, job in truth.items():
            ended = _epoch(job["completed_at"])
            if ended is None or ended <= connected + 1.0:
                continue
            expected.append((number, job_id, job["status"], (job_id, STATUS_MAP[job["status"]].value) in finals))
    return expected


def _judge_listeners(result: SoakResult, listeners: Listeners, truth: dict[str, dict[str, Any]]) -> None:
    """Each WebSocket client heard the final status of every job that ended after it connected."""
    for number, job_id, status, heard in _finals_to_hear(listeners, truth):
        result.to_hear += 1
        if heard:
            result.heard += 1
        else:
            result.problems.append(f"WebSocket client {number} never heard {job_id} end ({status})")


def run_soak(plan: SoakPlan, workdir: Path, log: Callable[[str], None] = lambda line: None) -> SoakResult:
    """One soak run in `workdir` (the stack's state, its log, the simulator's log); see the module's docs."""
    result = SoakResult(plan)
    began = time.monotonic()
    outer_log = log

    def log(line: str) -> None:  # each phase with the seconds since the start: where the run's time goes
        outer_log(f"[{time.monotonic() - began:5.1f} s] {line}")

    recorder = Recorder()
    (workdir / "stack").mkdir(parents=True, exist_ok=True)
    with ExitStack() as cleanup:
        cleanup.callback(recorder.close)
        stack = LocalStack(
            workdir / "stack",
            token=TOKEN,
            webhook_secret=SECRET,
            REPLICATE_API_TOKEN=SIMULATOR_TOKEN,
            SIMPLETUNER_JOB_POLL_INTERVAL="2",
            JOBSYNC_SNAPSHOT_SECONDS="1",
            # The relay sends every webhook from one loopback address, at a rate no per-IP limit is meant for.
            JOBSYNC_WEBHOOK_RATE_LIMIT_PER_IP="0",
        )
        relay = WebhookRelay(f"{stack.url}/api/webhooks/replicate", seed=plan.seed)
        relay.start()
        cleanup.callback(relay.stop)
        simulator_port = free_port()
        # The stack first (its start-up check of the provider finds nobody and says so), then the simulator,
        # whose story starts when it does.
        stack.extra_env["REPLICATE_API_BASE_URL"] = f"http://127.0.0.1:{simulator_port}/v1"
        stack.start()
        cleanup.callback(stack.stop)
        simulator = Simulator(workdir, plan, relay.url, simulator_port)
        cleanup.callback(simulator.stop)
        started = time.time()
        log(f"stack on {stack.url}, simulator on {simulator.url}, relay on {relay.url}")
        activity = Activity(stack, recorder, plan.seed)
        activity.start()
        cleanup.callback(activity.stop)

        time.sleep(max(0.0, started + plan.window * plan.kill_at - time.time()))
        down_from = time.time()
        assert stack.process is not None
        stack.process.send_signal(signal.SIGKILL)
        stack.process.wait(timeout=60)
        log("killed the stack with SIGKILL; starting it again over the same state folder")
        stack.start()
        up_at = time.time()
        result.down_seconds = up_at - down_from
        listeners = Listeners(f"{stack.ws_url}?token={TOKEN}", plan.clients)
        listeners.start()
        cleanup.callback(listeners.stop)
        log(f"up again after {result.down_seconds:.1f} s; {plan.clients} WebSocket clients connected")

        # The simulator's story ends; then nothing is sent any more and the stack catches up.
        end_by = began + plan.budget - 15  # what is left after that is for the checks and the stops
        while True:
            truth = simulator.jobs()
            trainings = [job for job in truth.values() if job["model"].startswith("jobsync-soak/")]
            if len(trainings) == plan.jobs and all(
                job["status"] not in ("starting", "processing") for job in trainings
            ):
                break
            if time.monotonic() > end_by:
                result.problems.append("the simulator's trainings did not all end in time")
                break
            time.sleep(1.0)
        result.trainings_ended = len(trainings)
        log(f"the simulator's {len(trainings)} trainings have ended; waiting for the stack to agree")
        # No new client requests; one in flight (two syncs take up to the function's 29 s on a loaded machine)
        # ends while the relay drains, rather than before it starts.
        activity.stop(wait=False)
        while relay.pending and time.monotonic() < end_by:
            time.sleep(0.5)
        log("the relay has delivered every webhook")
        truth, stored, differences = _converge(stack, simulator, recorder, end_by)
        activity.stop()
        log(f"the stack agrees with the simulator ({len(differences)} differences left); the clients have stopped")
        while time.monotonic() < end_by and not all(heard for *_, heard in _finals_to_hear(listeners, truth)):
            time.sleep(0.2)  # the last status changes are on their way to the sockets
        listeners.stop()
        log("the WebSocket clients have heard the final statuses")

        result.jobs = len(truth)
        result.matched = len(truth) - len({difference.split(":")[0] for difference in differences})
        result.problems += differences[:20] + ([f"... {len(differences) - 20} more"] if len(differences) > 20 else [])
        result.metrics_jobs, metric_problems = _metrics_problems(stack, recorder)
        result.problems += metric_problems
        result.max_rss_mb = activity.max_rss_mb
        if result.max_rss_mb >= RSS_LIMIT_MB:
            result.problems.append(f"the stack's RSS reached {result.max_rss_mb:.0f} MB")

        _judge_requests(result, recorder.calls, relay.attempts(), down_from, up_at)
        _judge_webhooks(result, relay)
        _judge_listeners(result, listeners, truth)
        result.seconds = time.monotonic() - began
        assert stack.process is not None
        stack_cpu = sum(activity.stack_cpu.values()) - activity.stack_cpu.get(stack.process.pid, 0.0)
        stack_cpu += _cpu_seconds(stack.process.pid)
        simulator_cpu = _cpu_seconds(simulator.process.pid)
        log(
            f"checked; CPU seconds: the stack {stack_cpu:.0f}, the simulator {simulator_cpu:.0f}, "
            f"the soak's clients, relay and checks {time.process_time():.0f}"
        )
    return result
