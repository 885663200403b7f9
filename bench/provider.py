"""The bench's Replicate: fixed latency, Replicate's read rate limit, pages of 100; and the worlds figures use.

Unlike tests/fakes/replicate.py (pages of 10, no latency, no limit) it is built to hold tens of
thousands of jobs: jobs are indexed by id and each list keeps its order, so an answer costs the same
whatever the number of jobs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import httpx

from bench.harness import Timeline
from tests.fakes.replicate import replicate_job

if TYPE_CHECKING:
    from bench.harness import Scenario

BASE_URL = "https://replicate.bench/v1"
TOKEN = "r8_bench_token"
_COLLECTIONS = {"predictions": "prediction", "trainings": "training"}
_EPOCH = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def stamp(seconds_before: float) -> str:
    """A Replicate timestamp `seconds_before` the bench's fixed now."""
    return (_EPOCH - timedelta(seconds=seconds_before)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def replicate_object(
    job_id: str,
    kind: str,
    status: str,
    created_at: str,
    *,
    logs: str | None = None,
    started_at: str | None = None,
    completed_at: str | None = None,
    predict_time: float | None = None,
) -> dict[str, Any]:
    """A Replicate object of `kind` as the bench's Replicate answers it (the tests' fake's shape)."""
    return replicate_job(
        status,
        job_id=job_id,
        created_at=created_at,
        logs=logs,
        started_at=started_at,
        completed_at=completed_at,
        predict_time=predict_time,
        job_input={"config_name": "bench"},
        collection="trainings" if kind == "training" else "predictions",
        base_url=BASE_URL,
    )


class FakeReplicate:
    """Replicate's list, get, account and webhook-secret routes, each answered after `latency` seconds.

    Past `reads_per_minute` answered requests in the last 60 s it answers 429 with Retry-After, as
    Replicate does. Every request is counted: lists, gets (also per job), others, throttled.
    """

    def __init__(
        self, timeline: Timeline, *, latency: float = 0.050, reads_per_minute: int = 3000, page_size: int = 100
    ) -> None:
        self.timeline = timeline
        self.latency = latency
        self.reads_per_minute = reads_per_minute
        self.page_size = page_size
        self.jobs: dict[str, dict[str, Any]] = {}
        self._lists: dict[str, list[str]] = {kind: [] for kind in _COLLECTIONS.values()}
        self._unsorted = False
        self._lock = threading.Lock()
        self._answered: deque[float] = deque()
        self.requests: Counter[str] = Counter()  # "list", "get", "other", "throttled"
        self.gets: Counter[str] = Counter()  # job id -> single gets

    # ---- the world --------------------------------------------------------------------------

    def add(self, kind: str, job: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.jobs[job["id"]] = job
            self._lists[kind].append(job["id"])
            self._unsorted = True
        return job

    def update(self, job_id: str, **fields: Any) -> None:
        with self._lock:
            self.jobs[job_id].update(fields)

    def reads(self) -> int:
        return self.requests["list"] + self.requests["get"] + self.requests["other"] + self.requests["throttled"]

    def clear_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.gets.clear()

    # ---- HTTP -------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.timeline.wait(self.latency)
        path = request.url.path.removeprefix("/v1").strip("/")
        collection, _, job_id = path.partition("/")
        route = (
            "list" if collection in _COLLECTIONS and not job_id else "get" if collection in _COLLECTIONS else "other"
        )
        with self._lock:
            throttled_for = self._throttled_for(time.monotonic())
            self.requests["throttled" if throttled_for else route] += 1
            if route == "get" and not throttled_for:
                self.gets[job_id] += 1
        if throttled_for:
            wait = math.ceil(throttled_for)
            return httpx.Response(
                429,
                headers={"retry-after": str(wait)},
                json={"detail": f"Request was throttled. Your rate limit resets in ~{wait}s.", "status": 429},
            )
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _problem(401, "You did not pass a valid authentication token")
        if route == "list":
            return self._page(collection, int(request.url.params.get("cursor", "0")))
        if route == "get":
            job = self.jobs.get(job_id)
            return httpx.Response(200, json=job) if job else _problem(404, "Not found.")
        if path == "account":
            return httpx.Response(200, json={"type": "user", "username": "bench", "name": "Bench"})
        if path == "webhooks/default/secret":
            return httpx.Response(200, json={"key": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
        return _problem(404, "Not found.")

    def _throttled_for(self, now: float) -> float:
        """Seconds until the next read is allowed (0: allowed now, and counted)."""
        while self._answered and self._answered[0] <= now - 60:
            self._answered.popleft()
        if len(self._answered) >= self.reads_per_minute:
            return self._answered[0] + 60 - now
        self._answered.append(now)
        return 0.0

    def _page(self, collection: str, start: int) -> httpx.Response:
        kind = _COLLECTIONS[collection]
        with self._lock:
            if self._unsorted:
                for ids in self._lists.values():
                    ids.sort(key=lambda job_id: self.jobs[job_id]["created_at"], reverse=True)
                self._unsorted = False
            ids = self._lists[kind][start : start + self.page_size]
            more = start + self.page_size < len(self._lists[kind])
            results = [{key: value for key, value in self.jobs[i].items() if key != "logs"} for i in ids]
        next_url = f"{BASE_URL}/{collection}?cursor={start + self.page_size}" if more else None
        return httpx.Response(200, json={"next": next_url, "previous": None, "results": results})


def _problem(status: int, detail: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"title": "Error", "detail": detail, "status": status},
        headers={"content-type": "application/problem+json"},
    )


# ------------------------------------------------------------------------------------- worlds

KINDS = ("training", "prediction")
RUNNING_LOGS = "\n".join(f"step {step}/1000 loss=0.{step:04d}" for step in range(1, 400, 25))
FINAL_LOGS = RUNNING_LOGS + "\nstep 1000/1000 loss=0.0123\nsaved the final checkpoint\n"


@dataclass
class World:
    """Jobs at the provider and in the store, and what changed at the provider since the store saw it."""

    active: list[tuple[str, str]] = field(default_factory=list)  # (kind, job id), newest first per list
    started: list[str] = field(default_factory=list)  # starting -> processing since the store saw them
    ended: list[str] = field(default_factory=list)  # processing -> succeeded since the store saw them

    @property
    def changed(self) -> list[str]:
        return self.started + self.ended

    def expected(self) -> dict[str, str]:
        """Job id -> the jobsync status each changed job should now have."""
        return {**{job_id: "running" for job_id in self.started}, **{job_id: "completed" for job_id in self.ended}}


def job_id(kind: str, number: int) -> str:
    return f"bench{kind[0]}{number:07d}"


def active_world(provider: FakeReplicate, active: int, *, started: int, ended: int, history: int = 150) -> World:
    """`active` active jobs at the top of the two lists (half each), `history` older ended jobs under them.

    The active jobs are the newest of each list, which is where active jobs are; `started` + `ended`
    of them, spread evenly, are about to change (call `apply_changes` after storing the world).
    """
    world = World()
    per_kind = {"training": active - active // 2, "prediction": active // 2}
    changing = started + ended
    every = max(1, active // changing) if changing else 0
    position = 0
    for kind in KINDS:
        for number in range(per_kind[kind]):
            job = job_id(kind, number)
            will_change = bool(every) and position % every == every // 2 and len(world.changed) < changing
            starts = will_change and len(world.started) < started
            if will_change:
                (world.started if starts else world.ended).append(job)
            status = "starting" if starts or (not will_change and number % 5 == 0) else "processing"
            created = stamp(2 * number + (kind == "prediction"))
            provider.add(kind, replicate_object(job, kind, status, created, **_facts(status, number)))
            world.active.append((kind, job))
            position += 1
        for number in range(per_kind[kind], per_kind[kind] + history):
            created = stamp(2 * number + (kind == "prediction"))
            provider.add(kind, replicate_object(job_id(kind, number), kind, "succeeded", created, **_ended(number)))
    return world


def _facts(status: str, number: int) -> dict[str, Any]:
    if status == "starting":
        return {}
    return {"started_at": stamp(2 * number - 30), "logs": RUNNING_LOGS}


def _ended(number: int) -> dict[str, Any]:
    return {
        "started_at": stamp(2 * number - 30),
        "completed_at": stamp(2 * number - 3600),
        "predict_time": 3570.0,
        "logs": FINAL_LOGS,
    }


def apply_changes(provider: FakeReplicate, world: World) -> None:
    """What happened at the provider since the store last saw the world: jobs started, jobs ended."""
    for job in world.started:
        provider.update(job, status="processing", started_at=stamp(1), logs=RUNNING_LOGS)
    for job in world.ended:
        provider.update(
            job, status="succeeded", completed_at=stamp(0), metrics={"predict_time": 1800.0}, logs=FINAL_LOGS
        )


def history_world(provider: FakeReplicate, jobs: int) -> None:
    """`jobs` ended jobs, half in each list: a history to import."""
    for kind in KINDS:
        count = jobs - jobs // 2 if kind == "training" else jobs // 2
        for number in range(count):
            created = stamp(2 * number + (kind == "prediction"))
            provider.add(kind, replicate_object(job_id(kind, number), kind, "succeeded", created, **_ended(number)))


def observations(provider: FakeReplicate, ids: Iterable[tuple[str, str]]) -> list[Any]:
    """The provider's jobs as the store would have read them from a list (no logs)."""
    from jobsync.providers.replicate_mapping import observation_from

    return [
        observation_from({key: value for key, value in provider.jobs[job].items() if key != "logs"}, kind)
        for kind, job in ids
    ]


def store_jobs(bench: Scenario, found: list[Any]) -> None:
    """Store observed jobs as a sync would have, with the metric counters they add up to.

    The items are the job store's own (`jobs._item`; the counters as `_counter_deltas` moves them),
    written straight into moto's tables: setting up is not what is measured.
    """
    from collections import Counter as Tally
    from decimal import Decimal

    from jobsync import wiring
    from jobsync.config import get_settings
    from jobsync.domain.job import new_job
    from jobsync.store import dynamo
    from jobsync.store.jobs import METRICS_KEY, _item

    settings, pricing = get_settings(), wiring.pricing()
    jobs = [replace(new_job(observation, pricing), version=1) for observation in found]
    bench.put_items(settings.jobs_table, [_item(job) for job in jobs])
    counters: dict[str, Any] = {"pk": METRICS_KEY}
    for status, count in Tally(job.status.value for job in jobs).items():
        counters[f"jobs_{status}"] = Decimal(count)
    counters["total_cost_usd"] = sum((Decimal(str(job.cost_usd or 0)) for job in jobs), Decimal(0))
    bench.put_items(settings.state_table, [dynamo.to_dynamo(counters)])
