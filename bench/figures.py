"""Each figure of `make bench`, measured beside its per-job baseline in the same run.

Every group below sets up its own world (bench.provider) in a fresh Scenario (bench.harness), runs
the product's own code (a handler, or the service the poller's handler calls), and returns Figures.
Counts are exact; times are wall times without moto's own time, with DynamoDB, Replicate and API
Gateway's latencies modelled (see bench.harness).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from bench.harness import ROOT, Counts, Lap, Scenario, patched, warm_thread
from bench.provider import (
    FINAL_LOGS,
    RUNNING_LOGS,
    World,
    active_world,
    apply_changes,
    history_world,
    job_id,
    observations,
    replicate_object,
    stamp,
    store_jobs,
)

PROVIDER = "replicate"
# The per-job baselines run over one active job in SAMPLE_EVERY, scaled up (see sampled_per_job_refresh).
SAMPLE_EVERY = 4


@dataclass
class Figure:
    key: str
    title: str
    value: float | int | None
    unit: str
    target: str
    ok: bool
    baseline: float | int | None = None
    baseline_note: str = "—"
    baseline_unit: str = ""  # when not the value's unit
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    how: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "value": _rounded(self.value),
            "baseline": _rounded(self.baseline),
            "ratio": _rounded(self.ratio),
            "target": self.target,
            "ok": self.ok,
            "unit": self.unit,
            "baseline_unit": self.baseline_unit or (self.unit if self.baseline is not None else None),
            "baseline_note": self.baseline_note,
            "title": self.title,
            "how": self.how,
            **{key: _rounded(value) for key, value in self.extra.items()},
        }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _ratio(value: float | int | None, baseline: float | int | None) -> float | None:
    if value is None or not baseline:
        return None
    return value / baseline


# ------------------------------------------------------------------------------ shared steps


def stored_world(bench: Scenario, active: int, *, started: int, ended: int) -> World:
    """`active` jobs stored as the last sync saw them; then `started` + `ended` of them change at the provider."""
    world = active_world(bench.provider, active, started=started, ended=ended)
    with bench.setup():
        store_jobs(bench, observations(bench.provider, world.active))
    apply_changes(bench.provider, world)
    bench.provider.clear_counts()
    return world


@dataclass
class Run:
    lap: Lap
    counts: Counts
    provider: dict[str, int]
    result: Any = None

    @property
    def reads(self) -> int:
        return sum(self.provider.values())


@contextmanager
def measured(bench: Scenario) -> Iterator[Run]:
    """What happens inside: the adjusted time, the DynamoDB counts, the provider's requests."""
    bench.provider.clear_counts()
    before = bench.meter.snapshot()
    run = Run(Lap(), Counts(), {})
    with bench.stopwatch() as lap:
        yield run
    run.lap, run.counts, run.provider = lap, bench.meter.snapshot() - before, dict(bench.provider.requests)


def tick(bench: Scenario) -> Run:
    """One poller tick (`poll_tick`, what the poller's handler runs at each due time), in its invocation."""
    from jobsync.services.polling import poll_tick

    with measured(bench) as run, bench.invocation("poller"):
        run.result = poll_tick()
    return run


# The tail keeper's function name in the bench's environment (refresh hands ended jobs' final logs to it).
TAIL_KEEPER_FUNCTION = "bench-tail-keeper"
TAIL_KEEPER_ENV = {"JOBSYNC_TAIL_KEEPER_FUNCTION": TAIL_KEEPER_FUNCTION}


@contextmanager
def handing_off() -> Iterator[HandOffs]:
    """jobsync.background's hand-offs queued (see HandOffs), for `run_tail_keeper` to play afterwards."""
    from jobsync import background

    hand_offs = HandOffs()
    with patched(background, "invoker", hand_offs):
        yield hand_offs


def run_tail_keeper(bench: Scenario, hand_offs: HandOffs) -> Run:
    """The tail_keeper invocations handed off so far, one after the other (Lambda would run them side by
    side), each with its template timeout: what the background does after the answer. Counted together."""
    handler = bench.handler("tail_keeper")
    with measured(bench) as run:
        runs = 0
        while hand_offs.waiting:
            name, payload = hand_offs.waiting.pop(0)
            if name != TAIL_KEEPER_FUNCTION:
                continue
            handler(payload, bench.context("tail_keeper"))
            runs += 1
        run.result = runs
    return run


def per_job_refresh(provider: str = PROVIDER, jobs: list[Any] | None = None) -> int:
    """The baseline the list walk replaces: one GET per active job (or per one of `jobs`), a write per change."""
    from jobsync import wiring
    from jobsync.providers.base import ProviderError
    from jobsync.providers.registry import provider_client
    from jobsync.services.job_updates import record_observation

    client, updated = provider_client(provider), 0
    for job in wiring.job_store().active(provider) if jobs is None else jobs:
        try:
            observation = client.get_job(job.job_id, job.kind)
        except ProviderError:
            continue
        if not (observation.status and observation.status.is_terminal):
            # The same writes as the list walk: the log tail only of a job that just ended.
            observation = replace(observation, logs=None)
        updated += record_observation(observation, current=job).changed
    return updated


def sampled_per_job_refresh(bench: Scenario, world: World) -> tuple[float, int]:
    """The per-job baseline's seconds and provider requests over `world`, measured on one job in SAMPLE_EVERY.

    Its cost is one GET and at most a write per job, in series: it grows with the jobs, so it is run
    over a sample (changed and unchanged jobs in proportion) and scaled up; reading the active jobs
    from the table is timed whole. Returns (seconds, requests), both for all the world's jobs.
    """
    from jobsync import wiring

    changed = set(world.changed)
    unchanged = [job for _, job in world.active if job not in changed]
    sample = set(unchanged[::SAMPLE_EVERY] + world.started[::SAMPLE_EVERY] + world.ended[::SAMPLE_EVERY])
    with measured(bench) as listing:
        active = wiring.job_store().active(PROVIDER)
    with measured(bench) as loop:  # no deadline: the baseline may take longer than an invocation
        per_job_refresh(jobs=[job for job in active if job.job_id in sample])
    scale = len(world.active) / len(sample)
    return listing.lap.seconds + loop.lap.seconds * scale, round(loop.reads * scale)


def applied(bench: Scenario, world: World) -> int:
    """How many of the world's changes the store holds."""
    from jobsync import wiring

    expected = world.expected()
    with bench.setup():
        stored = wiring.job_store().get_many(expected)
    return sum(1 for job_id, status in expected.items() if job_id in stored and stored[job_id].status == status)


# ---------------------------------------------------------------------------- poll, 1,000 jobs


TICK_REPEATS = 3


def poll_1k() -> list[Figure]:
    laps = []
    for repeat in range(TICK_REPEATS):
        with Scenario(env=TAIL_KEEPER_ENV) as bench, handing_off() as hand_offs:
            world = stored_world(bench, 1000, started=25, ended=25)
            run = tick(bench)
            laps.append(run.lap.seconds)
            if repeat == 0:  # the counts are the same every time; the time is the median of the repeats
                first, changes_applied = run, applied(bench, world)
                dropped, keeper = ended_without_tail(bench, world), run_tail_keeper(bench, hand_offs)
                idle = tick(bench)
    seconds = statistics.median(laps)
    with Scenario() as bench:
        baseline_seconds, baseline_requests = sampled_per_job_refresh(
            bench, stored_world(bench, 1000, started=25, ended=25)
        )
    how = (
        "1,000 active jobs stored (the newest 500 of each list; 150 older ended jobs under them), 50 changed at "
        "the provider (25 started running, 25 ended); one poll_tick() in the poller's invocation, then the "
        "per-job baseline on the same world in fresh tables: one GET per active job, and the same writes "
        "(record_observation for each; the log tail kept only for jobs that ended), with no deadline, run over "
        f"one job in {SAMPLE_EVERY} (changed and unchanged in proportion) and scaled up"
    )
    requests = Figure(
        "poll_requests_1k",
        "provider requests, one tick over 1,000 active jobs, 5% changed",
        first.reads,
        "requests",
        "≤ 0.05×",
        first.reads <= 0.05 * baseline_requests,
        baseline=baseline_requests,
        baseline_note=f"one GET per active job (run over 1 job in {SAMPLE_EVERY}, scaled)",
        ratio=_ratio(first.reads, baseline_requests),
        extra={
            "list_requests": first.provider.get("list", 0),
            "single_gets": first.provider.get("get", 0),
            "changed": len(world.changed),
            "applied": changes_applied,
            "dynamodb_requests": first.counts.requests,
            "dynamodb_writes": first.counts.write_requests,
            "ended_without_tail": dropped,
            "tail_keeper_gets": keeper.provider.get("get", 0),
        },
        how=how + "; the final logs of the jobs that ended are the tail keeper's (run after the tick, not counted "
        "here: `tail_keeper_gets`)",
    )
    wall = Figure(
        "poll_wall_1k",
        "wall time of that tick",
        seconds,
        "s",
        "≤ 0.03×",
        seconds <= 0.03 * baseline_seconds,
        baseline=baseline_seconds,
        baseline_note=f"the per-job baseline's time (run over 1 job in {SAMPLE_EVERY}, scaled)",
        ratio=_ratio(seconds, baseline_seconds),
        extra={
            "tick_seconds": laps,
            "moto_seconds_subtracted": first.lap.moto,
        },
        how=how + f"; the tick's time is the median of {TICK_REPEATS}, each in a fresh world",
    )
    idle_writes = Figure(
        "poll_writes_idle",
        "DynamoDB writes, idle tick",
        idle.counts.write_requests,
        "writes",
        "0",
        idle.counts.write_requests == 0,
        extra={"provider_requests": idle.reads, "dynamodb_requests": idle.counts.requests},
        how="the next tick over the same world, nothing changed at the provider: DynamoDB write requests counted",
    )
    return [requests, wall, idle_writes]


# ------------------------------------------------------------------ poll, 10,000 jobs; list pages

LIST_FILTERS: tuple[dict[str, str], ...] = (
    {},
    {"status": "running"},
    {"status": "queued"},
    {"status": "completed"},
    {"provider": PROVIDER},
    {"provider": PROVIDER, "status": "running"},
    {"provider": PROVIDER, "status": "queued"},
)


def poll_10k() -> list[Figure]:
    active, changing = 10_000, 500
    with Scenario(env=TAIL_KEEPER_ENV) as bench, handing_off() as hand_offs:
        world = stored_world(bench, active, started=changing // 2, ended=changing // 2)
        run = tick(bench)
        changes_applied = applied(bench, world)
        dropped = ended_without_tail(bench, world)
        keeper = run_tail_keeper(bench, hand_offs)
        tails = kept(bench, world)[1]
        pages = list_pages(bench, limit=50)
    list_requests = run.provider.get("list", 0)
    list_limit = active // 100 + 10
    poll = Figure(
        "poll_10k",
        "tick over 10,000 active jobs, 5% changed",
        run.lap.seconds,
        "s",
        f"all {changing} changes applied, ≤ 15 s, ≤ {list_limit} list requests",
        changes_applied == changing and run.lap.seconds <= 15 and list_requests <= list_limit and dropped == 0,
        baseline=active,
        baseline_unit="requests",
        baseline_note="one GET per active job (by definition; not run: 10,000 GETs take 200 s at "
        "Replicate's 3,000 reads a minute)",
        ratio=_ratio(run.reads, active),
        extra={
            "applied": changes_applied,
            "changed": changing,
            "list_requests": list_requests,
            "single_gets": run.provider.get("get", 0),
            "throttled": run.provider.get("throttled", 0),
            "provider_requests": run.reads,
            "dynamodb_requests": run.counts.requests,
            "dynamodb_writes": run.counts.write_requests,
            "ended_without_tail": dropped,
            "tail_keeper_seconds": keeper.lap.seconds,
            "tail_keeper_gets": keeper.provider.get("get", 0),
            "log_tails_kept": tails,
            "moto_seconds_subtracted": run.lap.moto,
        },
        how="10,000 active jobs stored (the newest 5,000 of each list), 500 changed (250 started, 250 ended); "
        "one poll_tick() in the poller's invocation; `applied` read back from the table; the 250 final logs "
        "are the tail keeper's: `ended_without_tail` (stored as ended, tail neither kept nor pending) counted "
        "right after the tick, then the tail_keeper invocations handed off run one after the other "
        "(`tail_keeper_seconds`, not part of the tick) and `log_tails_kept` read back",
    )
    worst = max(pages, key=lambda page: page["items_read"])
    scanned = Figure(
        "list_scanned",
        "items read, a 50-job page of 10,000, any filter",
        worst["items_read"],
        "items",
        "≤ 51",
        worst["items_read"] <= 51,
        extra={"pages": pages},
        how="GET /api/cloud/jobs?limit=50 (list_jobs handler) on the 10,000 jobs of poll_10k after its tick, "
        "pages 1 and 2 of each filter: items DynamoDB read (GetItem items, ScannedCount of queries) per request",
    )
    return [poll, scanned]


def list_pages(bench: Scenario, *, limit: int, filters: tuple[dict[str, str], ...] = LIST_FILTERS) -> list[dict]:
    """Pages 1 and 2 of each filter through the list_jobs handler: items read and jobs answered, per page."""
    pages = []
    for query in filters:
        cursor = None
        for number in (1, 2):
            params = {**query, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
            before = bench.meter.snapshot()
            status, body, _ = bench.call_http("list_jobs", query=params)
            read = (bench.meter.snapshot() - before).items_read
            if status != 200:
                raise RuntimeError(f"list_jobs {params} answered {status}: {body}")
            label = "&".join(f"{k}={v}" for k, v in query.items()) or "(none)"
            pages.append({"filter": label, "page": number, "items_read": read, "jobs": len(body["jobs"])})
            cursor = body.get("next_cursor")
            if not cursor:
                break
    return pages


# ------------------------------------------------------------------------------------ sync_active


def _sync_active(bench: Scenario) -> Run:
    with measured(bench) as run:
        run.result = bench.call_http("list_jobs", query={"sync_active": "true", "limit": "50"})
    status, body, _ = run.result
    if status != 200:
        raise RuntimeError(f"sync_active answered {status}: {body}")
    return run


def kept(bench: Scenario, world: World) -> tuple[int, int]:
    """Of the world's ended jobs: how many the store holds as ended, and with the final log tail."""
    from jobsync import wiring

    with bench.setup():
        jobs = wiring.job_store().get_many(world.ended)
        states = sum(1 for job_id in world.ended if job_id in jobs and jobs[job_id].is_terminal)
        tails = 0
        for job_id in world.ended:
            tail = wiring.state_store().log_tail(job_id)
            tails += tail is not None and "saved the final checkpoint" in tail.text
    return states, tails


def ended_without_tail(bench: Scenario, world: World) -> int:
    """Of the world's ended jobs stored as ended: how many have their final tail neither kept nor pending."""
    from jobsync import wiring

    with bench.setup():
        jobs = wiring.job_store().get_many(world.ended)
        pending = set(wiring.log_store().pending_final())
        dropped = 0
        for job_id in world.ended:
            if job_id in jobs and jobs[job_id].is_terminal and job_id not in pending:
                tail = wiring.state_store().log_tail(job_id)
                dropped += tail is None or "saved the final checkpoint" not in tail.text
    return dropped


def sync_active() -> list[Figure]:
    from bench.harness import timeouts
    from jobsync import wiring

    timeout = timeouts()["list_jobs"]
    with Scenario(env=TAIL_KEEPER_ENV) as bench, handing_off() as hand_offs:
        world = stored_world(bench, 1000, started=0, ended=150)
        some = _sync_active(bench)
        some_dropped = ended_without_tail(bench, world)
        some_keeper = run_tail_keeper(bench, hand_offs)
        some_kept = kept(bench, world)
    with Scenario() as bench:
        world = stored_world(bench, 1000, started=0, ended=150)
        baseline_seconds, baseline_requests = sampled_per_job_refresh(bench, world)
        with measured(bench) as page:
            wiring.job_store().page(limit=50)
        baseline_seconds += page.lap.seconds
    with Scenario(env=TAIL_KEEPER_ENV) as bench, handing_off() as hand_offs:
        world_all = stored_world(bench, 1000, started=0, ended=1000)
        everything = _sync_active(bench)
        all_dropped = ended_without_tail(bench, world_all)
        all_keeper = run_tail_keeper(bench, hand_offs)
        all_kept = kept(bench, world_all)
    what = "GET /api/cloud/jobs?sync_active=true&limit=50 (list_jobs handler, its 29 s invocation) over 1,000 stored"
    kept_how = (
        "; ended jobs' final logs are handed to the tail keeper: `ended_without_tail` counts, right after the "
        "answer, jobs stored as ended whose tail is neither kept nor pending (must be 0); then the tail_keeper "
        "invocations handed off run one after the other (`tail_keeper_seconds`, not part of the answer) and "
        "`final_states_kept`/`log_tails_kept` are read back from the tables"
    )
    figures = [
        Figure(
            "sync_active_ended_150",
            "seconds to answer sync_active when 150 of 1,000 active jobs just ended",
            some.lap.seconds,
            "s",
            "≤ 3 s",
            some.lap.seconds <= 3 and some_dropped == 0,
            baseline=baseline_seconds,
            baseline_note=f"per-job: one GET per active job, then the page (run over 1 job in {SAMPLE_EVERY}, scaled)",
            ratio=_ratio(some.lap.seconds, baseline_seconds),
            extra={
                "provider_requests": some.reads,
                "single_gets": some.provider.get("get", 0),
                "baseline_provider_requests": baseline_requests,
                "dynamodb_requests": some.counts.requests,
                "dynamodb_writes": some.counts.write_requests,
                "ended_without_tail": some_dropped,
                "tail_keeper_runs": some_keeper.result,
                "tail_keeper_seconds": some_keeper.lap.seconds,
                "tail_keeper_gets": some_keeper.provider.get("get", 0),
                "final_states_kept": some_kept[0],
                "log_tails_kept": some_kept[1],
                "ended": 150,
                "moto_seconds_subtracted": some.lap.moto,
            },
            how=f"{what} active jobs, 150 of them ended at the provider" + kept_how,
        ),
        Figure(
            "sync_active_ended_1k",
            "seconds to answer sync_active when all 1,000 active jobs just ended",
            everything.lap.seconds,
            "s",
            "≤ 5 s, every final state and log tail kept",
            everything.lap.seconds <= 5 and all_dropped == 0 and all_kept == (1000, 1000),
            extra={
                "provider_requests": everything.reads,
                "single_gets": everything.provider.get("get", 0),
                "dynamodb_requests": everything.counts.requests,
                "dynamodb_writes": everything.counts.write_requests,
                "ended_without_tail": all_dropped,
                "tail_keeper_runs": all_keeper.result,
                "tail_keeper_seconds": all_keeper.lap.seconds,
                "tail_keeper_gets": all_keeper.provider.get("get", 0),
                "final_states_kept": all_kept[0],
                "log_tails_kept": all_kept[1],
                "ended": 1000,
                "over_function_timeout": everything.lap.seconds > timeout,
                "function_timeout_seconds": timeout,
                "moto_seconds_subtracted": everything.lap.moto,
            },
            how=f"{what} active jobs, all ended at the provider" + kept_how,
        ),
    ]
    return figures


# ------------------------------------------------------------------------------------- first sync

IMPORTER_FUNCTION = "bench-history-importer"
# More importer invocations than this for one history means the import does not get to its end.
MAX_IMPORTER_RUNS = 60


class HandOffs:
    """jobsync.background's invoker in the bench: each hand-off is queued, and `run` plays Lambda's async
    invoke, one invocation after the other through the function's handler, with its template timeout."""

    def __init__(self) -> None:
        self.waiting: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, function_name: str, payload: bytes) -> None:
        self.waiting.append((function_name, json.loads(payload)))


@dataclass
class FirstSync:
    press: Run
    status: int
    body: dict[str, Any]
    importer_runs: list[Run]
    imported: int  # jobs stored once the background import stopped
    import_done: bool  # nothing was left to import


def sync_then_import(bench: Scenario) -> FirstSync:
    """One press of Sync (the sync_jobs handler), then the history importer's hand-offs, run until none is left."""
    from jobsync import background, wiring

    hand_offs = HandOffs()
    with patched(background, "invoker", hand_offs):
        with measured(bench) as press:
            status, body, _ = bench.call_http("sync_jobs")
        importer, runs = bench.handler("history_importer"), []
        while hand_offs.waiting and len(runs) < MAX_IMPORTER_RUNS:
            name, payload = hand_offs.waiting.pop(0)
            assert name == IMPORTER_FUNCTION, name
            with measured(bench) as run:
                run.result = importer(payload, bench.context("history_importer"))
            runs.append(run)
    with bench.setup():
        imported = sum(wiring.job_store().counters().by_status.values())
        done = not wiring.import_store().get(PROVIDER).running
    return FirstSync(press, status, body or {}, runs, imported, done)


def first_sync() -> list[Figure]:
    history = 10_000
    with Scenario(env={"JOBSYNC_HISTORY_IMPORTER_FUNCTION": IMPORTER_FUNCTION}) as bench:
        history_world(bench.provider, history)
        sync = sync_then_import(bench)
    press, runs = sync.press, sync.importer_runs
    presses = 1 if sync.status == 200 and sync.import_done else None
    total_writes = press.counts.write_requests + sum(run.counts.write_requests for run in runs)
    return [
        Figure(
            "first_sync_10k",
            "first sync of a 10,000-job history: seconds to answer",
            press.lap.seconds,
            "s",
            "one press, ≤ 3 s, all imported",
            presses == 1 and press.lap.seconds <= 3 and sync.imported == history,
            baseline=history,
            baseline_unit="writes",
            baseline_note="one DynamoDB put per job (ratio: the whole import's write requests / this)",
            ratio=_ratio(total_writes, history),
            extra={
                "presses": presses if presses is not None else "more than one (the import did not finish)",
                "imported": sync.imported,
                "synced_by_the_press": sync.body.get("synced"),
                "press_provider_requests": press.reads,
                "importer_invocations": len(runs),
                "importer_seconds": sum(run.lap.seconds for run in runs),
                "importer_provider_requests": sum(run.reads for run in runs),
                "dynamodb_writes_whole_import": total_writes,
            },
            how="POST /api/cloud/jobs/sync (sync_jobs handler, its 29 s invocation) against 10,000 ended jobs "
            "(5,000 a list), nothing stored, pressed once; then the history_importer invocations it handed off "
            "(each with its template timeout, one after the other, each handing off the next) until none is "
            "left; `imported` is what the store holds at the end",
        )
    ]


# ------------------------------------------------------------------------------------- progress

PROGRESS_JOBS, PROGRESS_CLIENTS, PROGRESS_ROUNDS, PROGRESS_SLOTS = 20, 50, 2, 10
PROGRESS_INTERVAL = 5.0


class VirtualTime:
    """Stands in for `time` where inline progress reads the wall clock: the bench says what time it is."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def running_jobs(bench: Scenario, count: int) -> list[str]:
    ids = [job_id("training", number) for number in range(count)]
    for number, job in enumerate(ids):
        bench.provider.add(
            "training",
            replicate_object(
                job, "training", "processing", stamp(600 + number), started_at=stamp(500), logs=RUNNING_LOGS
            ),
        )
    with bench.setup():
        store_jobs(bench, observations(bench.provider, [("training", job) for job in ids]))
    bench.provider.clear_counts()
    return ids


def progress_round(
    bench: Scenario,
    pool: ThreadPoolExecutor,
    clock: VirtualTime,
    ids: list[str],
    start: float,
    *,
    clients: int,
    slots: int,
) -> list[int]:
    """One refresh interval: `clients` dashboards each ask every job once, in `slots` bursts spread over it."""
    statuses = []
    for slot in range(slots):
        clock.now = start + slot * PROGRESS_INTERVAL / slots
        calls = [
            pool.submit(bench.call_http, "inline_progress", path={"job_id": job})
            for _ in range(clients // slots)
            for job in ids
        ]
        statuses += [call.result()[0] for call in calls]
    return statuses


def progress_calls(
    bench: Scenario, ids: list[str], *, rounds: int, clients: int, slots: int, threads: int
) -> list[int]:
    """`rounds` refresh intervals of `clients` dashboards asking every job for its progress; the answers' statuses."""
    from jobsync.services import inline_progress, job_updates, kept_logs, logs

    clock = VirtualTime(time.time())
    start, statuses = clock.now, []
    with (
        patched(inline_progress, "time", clock),
        patched(job_updates, "time", clock),
        # Inline progress reads the logs through services/logs.py (the claim) and keeps them in kept_logs.py.
        patched(logs, "time", clock),
        patched(kept_logs, "time", clock),
        ThreadPoolExecutor(threads, initializer=warm_thread) as pool,
    ):
        for number in range(rounds):
            begins = start + number * PROGRESS_INTERVAL
            statuses += progress_round(bench, pool, clock, ids, begins, clients=clients, slots=slots)
    return statuses


def progress() -> list[Figure]:
    with Scenario() as bench:
        ids = running_jobs(bench, PROGRESS_JOBS)
        with measured(bench) as run:
            statuses = progress_calls(
                bench, ids, rounds=PROGRESS_ROUNDS, clients=PROGRESS_CLIENTS, slots=PROGRESS_SLOTS, threads=10
            )
        gets = [bench.provider.gets[job] for job in ids]
    worst = max(gets) / PROGRESS_ROUNDS
    requests = len(statuses)
    return [
        Figure(
            "progress_requests",
            "inline progress, 20 jobs × 50 clients every 5 s: provider calls per job per 5 s",
            worst,
            "calls/job/5 s",
            "≤ 1",
            worst <= 1 and all(status == 200 for status in statuses),
            baseline=PROGRESS_CLIENTS,
            baseline_note="one call per request (not run: 200 calls a second, four times Replicate's read limit)",
            ratio=_ratio(worst, PROGRESS_CLIENTS),
            extra={
                "requests": requests,
                "answers_not_200": sum(status != 200 for status in statuses),
                "provider_gets": sum(gets),
                "dynamodb_requests_per_request": run.counts.requests / requests,
                "dynamodb_items_read_per_request": run.counts.items_read / requests,
                "dynamodb_writes_per_request": run.counts.write_requests / requests,
            },
            how=f"{PROGRESS_ROUNDS} intervals of 5 s on a virtual clock; in each, 50 clients ask each of 20 running "
            f"jobs once (inline_progress handler), {PROGRESS_CLIENTS // PROGRESS_SLOTS} clients at a time in "
            f"{PROGRESS_SLOTS} bursts 0.5 s apart, 10 threads; value: the most provider GETs any job got, per interval",
        )
    ]


# --------------------------------------------------------------------------------------- fan-out

SOCKETS = 1000


def open_sockets(bench: Scenario, count: int) -> None:
    """`count` open WebSocket connections (rows as ws_connect stores them), and warm clients to post with."""
    import boto3

    from jobsync import wiring
    from jobsync.push.websocket import pusher

    with bench.setup():
        table = boto3.resource("dynamodb").Table(wiring.connection_store()._table_name)
        now = int(time.time())
        with table.batch_writer() as batch:
            for number in range(count):
                batch.put_item(
                    Item={
                        "connection_id": f"bench{number:05d}=",
                        "source_ip": f"198.51.{number // 250}.{number % 250}",
                        "channel": "jobs",
                        "connected_at": now,
                        "expires_at": now + 7200,
                    }
                )
        pusher()  # the clients exist before anything is timed, as in a warm instance
        warm_thread()


def one_change_event() -> dict[str, Any]:
    """The broadcaster's sample event cut to one MODIFY record: one status change."""
    event = json.loads((ROOT / "events" / "broadcaster.json").read_text())
    event["Records"] = event["Records"][:1]
    return event


def broadcast_one_change(bench: Scenario) -> Run:
    """The broadcaster handler over one status change; `result` is its answer."""
    with measured(bench) as run:
        run.result = bench.handler("broadcaster")(one_change_event(), bench.context("broadcaster"))
    return run


def fanout() -> list[Figure]:
    from jobsync import wiring
    from jobsync.push.websocket import pusher
    from jobsync.services.broadcast import status_changes
    from jobsync.store.dynamo import from_stream_image

    record = one_change_event()["Records"][0]["dynamodb"]
    with Scenario() as bench:
        open_sockets(bench, SOCKETS)
        run = broadcast_one_change(bench)
        answer = run.result
        message = status_changes([(from_stream_image(record["NewImage"]), from_stream_image(record["OldImage"]))])
        with measured(bench) as baseline:
            for connection in wiring.connection_store().all():
                pusher().post(connection.connection_id, message[0].message())
    return [
        Figure(
            "fanout_1k",
            "fan-out of one change to 1,000 sockets, 20 ms per post",
            run.lap.seconds,
            "s",
            "≤ 0.05×",
            run.lap.seconds <= 0.05 * baseline.lap.seconds and answer.get("sent") == SOCKETS,
            baseline=baseline.lap.seconds,
            baseline_note="sequential posts over the same connections and client (run)",
            ratio=_ratio(run.lap.seconds, baseline.lap.seconds),
            extra={
                "sent": answer.get("sent"),
                "posts": run.counts.posts,
                "baseline_posts": baseline.counts.posts,
                "dynamodb_requests": run.counts.requests,
            },
            how="the broadcaster handler with one MODIFY stream record (a status change), 1,000 connection rows; "
            "each post to a connection answered after 20 ms (the pusher's signed POST; API Gateway modelled)",
        )
    ]


# -------------------------------------------------------------------------------- counter conflicts

WRITERS = 50


@dataclass
class _Writers:
    refused: int  # transactions DynamoDB (modelled) cancelled as conflicts, retried by the writers
    sent: int
    failed: int
    failures: list[str]
    exact: bool
    seconds: float


def concurrent_writers(writers: int = WRITERS) -> _Writers:
    """`writers` threads released together, each ending a different running job through record_observation."""
    from jobsync import wiring
    from jobsync.providers.replicate_mapping import observation_from
    from jobsync.services.job_updates import record_observation

    with Scenario() as bench:
        ids = running_jobs(bench, writers)
        with bench.setup():
            jobs = wiring.job_store().get_many(ids)
        ended = {
            job: observation_from(
                replicate_object(
                    job,
                    "training",
                    "succeeded",
                    stamp(600),
                    started_at=stamp(500),
                    completed_at=stamp(0),
                    logs=FINAL_LOGS,
                ),
                "training",
            )
            for job in ids
        }
        barrier = threading.Barrier(writers)

        def write(job: str) -> str | None:
            warm_thread()
            barrier.wait()
            try:
                record_observation(ended[job], current=jobs[job])
            except Exception as exc:  # noqa: BLE001 - counted, not raised
                return type(exc).__name__
            return None

        with measured(bench) as run, ThreadPoolExecutor(writers) as pool:
            outcomes = list(pool.map(write, ids))
        with bench.setup():
            counters = wiring.job_store().counters().by_status
    failed = sum(outcome is not None for outcome in outcomes)
    return _Writers(
        refused=run.counts.conflicts,
        sent=run.counts.calls.get("TransactWriteItems", 0),
        failed=failed,
        failures=sorted({outcome for outcome in outcomes if outcome}),
        exact=counters.get("completed") == writers - failed and counters.get("running") == failed,
        seconds=run.lap.seconds,
    )


COUNTER_CONFLICTS_TARGET = 0.25  # of the refusals one counter item causes


def counter_conflicts() -> list[Figure]:
    from jobsync.store import jobs

    sharded = concurrent_writers()
    with patched(jobs, "COUNTER_SHARDS", 1):  # the baseline: every write moves the one counter item
        single = concurrent_writers()
    ok = sharded.failed == 0 and sharded.exact and sharded.refused <= COUNTER_CONFLICTS_TARGET * single.refused
    return [
        Figure(
            "counter_conflicts",
            "failed or retried transactions among 50 concurrent writers",
            sharded.refused,
            "transactions refused",
            f"≤ {COUNTER_CONFLICTS_TARGET:g}× the single item's, no writer fails, counters exact",
            ok,
            baseline=single.refused,
            baseline_note=f"the same 50 writers with one counter item (jobs.COUNTER_SHARDS = 1; run): "
            f"{single.failed} failed, {single.sent} transactions sent",
            ratio=_ratio(sharded.refused, single.refused),
            extra={
                "writers": WRITERS,
                "counter_shards": jobs.COUNTER_SHARDS,
                "writers_failed": sharded.failed,
                "failures": sharded.failures,
                "transactions_sent": sharded.sent,
                "counters_exact": sharded.exact,
                "seconds": sharded.seconds,
                "single_item_writers_failed": single.failed,
                "single_item_seconds": single.seconds,
            },
            how="50 threads released together, each ending a different running job through record_observation "
            "(job put + a counter shard in one transaction, retried when refused); a transaction that meets "
            "another one holding an item it writes is refused as DynamoDB refuses it (modelled: moto has no "
            "conflicts); then the same with one counter item for all",
        )
    ]


# ------------------------------------------------------------------------------------- cold start


def cold_start() -> list[Figure]:
    from bench import cold_start as timing

    results = timing.measure()
    baseline = results["(boto3 handler)"]
    floor = results["(pydantic floor)"]
    per_function = {name: result for name, result in results.items() if not name.startswith("(")}
    worst_name = max(per_function, key=lambda name: float(per_function[name]["ratio"]))
    worst = float(per_function[worst_name]["ratio"])
    how = (
        "CPU time of `import app` plus one first invocation with the function's sample event (events/), inside "
        "fresh `python -I` processes (layer and function folder on sys.path), against moto's DynamoDB on the "
        f"loopback; median of {timing.RUNS} runs, over the median of the boto3-only handler's (boto3 + one "
        "DynamoDB client at import, one GetItem); runs round-robin, after the .pyc files are written"
    )
    figures = [
        Figure(
            "cold_start",
            "worst function's cold start (import + first invocation) vs a boto3-only handler's",
            worst,
            "×",
            "≤ 1.3×",
            worst <= 1.3,
            baseline=float(baseline["cpu_ms"]),
            baseline_unit="ms",
            baseline_note="the boto3-only handler's import and first GetItem, CPU time",
            ratio=worst,
            extra={
                "worst_function": worst_name,
                "baseline_import_cpu_ms": baseline["import_cpu_ms"],
                "baseline_wall_ms": baseline["wall_ms"],
                "import_boto3_only_cpu_ms": results["(import boto3 only)"]["import_cpu_ms"],
                "functions_over_target": sorted(name for name, r in per_function.items() if float(r["ratio"]) > 1.3),
                "worst_import_only_ratio": max(float(r["import_ratio"]) for r in per_function.values()),
                # The best any function that validates its settings with pydantic can do: the boto3-only
                # handler plus pydantic and one small model validated, measured in the same runs.
                "pydantic_floor_ratio": floor["ratio"],
                "pydantic_floor_cpu_ms": floor["cpu_ms"],
            },
            how=how,
        )
    ]
    for name, result in sorted(per_function.items()):
        ratio = float(result["ratio"])
        figures.append(
            Figure(
                f"cold_start.{name}",
                f"{name}: import + first invocation",
                float(result["cpu_ms"]),
                "ms",
                "≤ 1.3×",
                ratio <= 1.3,
                baseline=float(baseline["cpu_ms"]),
                baseline_note="the boto3-only handler's import and first GetItem, CPU time",
                ratio=ratio,
                extra={
                    "import_cpu_ms": result["import_cpu_ms"],
                    "import_ratio": result["import_ratio"],
                    "wall_ms": result["wall_ms"],
                    "first_answer": result["first_answer"],
                },
                how=how,
            )
        )
    return figures


GROUPS: dict[str, Callable[[], list[Figure]]] = {
    "poll_1k": poll_1k,
    "poll_10k": poll_10k,
    "progress": progress,
    "sync_active": sync_active,
    "first_sync": first_sync,
    "fanout": fanout,
    "counter_conflicts": counter_conflicts,
    "cold_start": cold_start,
}
