"""Replicate's predictions and trainings as a function of the clock, without HTTP.

A job's status, logs and timestamps at a moment follow from its story
(`story.py`) and the cancellations made through the API; nothing else is
state. Faults (injected one by one, or drawn at a seeded rate) and request
counts, which tests use to drive and watch a client, live here too, behind the
same lock; `app.py` turns a fault into what goes over the wire.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import os
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jobsync.domain.webhook_signature import sign_webhook
from local.replicate_simulator import seeded
from local.replicate_simulator.listing import BadRequest, encode_cursor, page_of, query_time
from local.replicate_simulator.scenarios import SCENARIO
from local.replicate_simulator.story import NS_PER_S, Job, epoch_ns, prediction_history, scenario_training

Clock = Callable[[], float]
JobObject = dict[str, Any]

DEFAULT_TOKEN = "r8_jobsync_simulator"
DEFAULT_SEED = 1337
DEFAULT_BASE_URL = "https://api.replicate.com/v1"
HISTORY_SIZE = 230
RETENTION_SECONDS = 3600.0  # Replicate removes an ended prediction's logs and data an hour later
LOGS_WEBHOOK_EVERY = 5.0
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "aborted"})
ACCOUNT = {"type": "user", "username": "jobsync-simulator", "name": "jobsync simulator", "github_url": None}


# What a request can meet instead of its answer (app.py renders each):
FAULT_KINDS = (
    "429",  # throttled, as Replicate answers it: `{"detail": "... resets in ~1s."}`, no Retry-After
    "429-retry-after",  # throttled, with a `Retry-After` header
    "500",
    "502",
    "503",
    "504",
    "timeout",  # no answer for FaultPlan.timeout_seconds (longer than a client waits), then a 504
    "reset",  # the answer stops half-way and the connection is closed
    "truncated",  # a 200 whose JSON body is cut short (its Content-Length says so: nothing else is wrong)
)


@dataclass(frozen=True)
class Fault:
    kind: str  # one of FAULT_KINDS, or an HTTP error status as text ("418")

    @property
    def status(self) -> int | None:
        """The HTTP status the fault answers with outright (None: timeout, reset, truncated)."""
        head = self.kind.partition("-")[0]
        return int(head) if head.isdigit() else None


def _fault(kind: int | str) -> Fault:
    fault = Fault(str(kind).strip().lower())
    if fault.kind not in FAULT_KINDS and not (fault.kind.isdigit() and 400 <= int(fault.kind) <= 599):
        raise ValueError(f"unknown fault {kind!r}: an HTTP error status or one of {', '.join(FAULT_KINDS)}")
    return fault


@dataclass(frozen=True)
class FaultPlan:
    """Faults drawn at random: each request meets one with probability `rate`, of a kind drawn from `kinds`.

    The draws come from a generator seeded with `seed` (default: the
    simulator's), so the same requests in the same order meet the same faults.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int | None = None
    timeout_seconds: float = 30.0  # a "timeout" holds the answer this long: more than jobsync's client waits
    # At most this many drawn faults on one URL (method, path and query) within `per_url_seconds` of the
    # simulator's clock; a drawn fault past that is spared. A client that retries one request more often
    # than this, within that time, always gets through, however many concurrent requests to the same URL
    # interleave with its retries (a cap on faults *in a row* did not hold: others' answers broke the row).
    # None: no cap.
    most_per_url: int | None = None
    per_url_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not (isinstance(self.rate, (int, float)) and 0.0 <= self.rate <= 1.0):
            raise ValueError(f"fault rate must be between 0 and 1, not {self.rate!r}")
        kinds = tuple(_fault(kind).kind for kind in self.kinds)
        if self.rate > 0 and not kinds:
            raise ValueError("a fault rate needs at least one fault kind")
        if not (math.isfinite(self.timeout_seconds) and self.timeout_seconds >= 0):
            raise ValueError(f"timeout_seconds must be a non-negative number, not {self.timeout_seconds!r}")
        if self.most_per_url is not None and self.most_per_url < 1:
            raise ValueError(f"most_per_url must be at least 1, not {self.most_per_url!r}")
        if not (math.isfinite(self.per_url_seconds) and self.per_url_seconds > 0):
            raise ValueError(f"per_url_seconds must be a positive number, not {self.per_url_seconds!r}")
        object.__setattr__(self, "kinds", kinds)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FaultPlan:
        """`JOBSYNC_SIMULATOR_FAULT_RATE` (0 to 1), `JOBSYNC_SIMULATOR_FAULTS` (comma-separated kinds, default
        all), `JOBSYNC_SIMULATOR_FAULT_SEED`, `JOBSYNC_SIMULATOR_FAULT_TIMEOUT_SECONDS`; unset: no faults."""
        env = os.environ if env is None else env

        def value(name: str) -> str | None:
            text = (env.get(name) or "").strip()
            return text or None

        try:
            rate = float(value("JOBSYNC_SIMULATOR_FAULT_RATE") or 0)
            seed = value("JOBSYNC_SIMULATOR_FAULT_SEED")
            timeout = value("JOBSYNC_SIMULATOR_FAULT_TIMEOUT_SECONDS")
            kinds = value("JOBSYNC_SIMULATOR_FAULTS")
            return cls(
                rate=rate,
                kinds=tuple(part for part in kinds.split(",") if part.strip()) if kinds else FAULT_KINDS,
                seed=int(seed) if seed is not None else None,
                timeout_seconds=float(timeout) if timeout is not None else cls.timeout_seconds,
            )
        except ValueError as exc:
            raise ValueError(f"simulator faults: {exc}") from None


@dataclass
class _Faults:
    plan: FaultPlan
    rng: random.Random
    queued: deque[Fault] = field(default_factory=deque)
    met: Counter[str] = field(default_factory=Counter)
    faulted_at: dict[str, deque[float]] = field(default_factory=dict)  # URL -> when its recent faults were

    def next(self, url: str = "", now: float = 0.0) -> Fault | None:
        if self.queued:
            return self.queued.popleft()
        # Always two draws, fault or not: the sequence depends on the number of requests only.
        hit, pick = self.rng.random(), self.rng.randrange(max(1, len(self.plan.kinds)))
        drawn = Fault(self.plan.kinds[pick]) if hit < self.plan.rate else None
        return drawn if drawn is None or self.plan.most_per_url is None else self._capped(url, drawn, now)

    def _capped(self, url: str, drawn: Fault, now: float) -> Fault | None:
        recent = self.faulted_at.setdefault(url, deque())
        while recent and recent[0] <= now - self.plan.per_url_seconds:
            recent.popleft()
        if len(recent) >= (self.plan.most_per_url or 0):
            return None
        recent.append(now)
        return drawn


@dataclass(frozen=True)
class WebhookEvent:
    """One webhook Replicate would send: `event` is `start`, `logs` or `completed`."""

    job_id: str
    event: str
    at: float  # epoch seconds; the body shows the job as it was then
    webhook_id: str


def _read_cancellations(path: Path | None) -> dict[str, float]:
    """The cancellations kept in `path` (job id → epoch seconds); a torn last line was never answered."""
    found: dict[str, float] = {}
    if path is None or not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            found.setdefault(str(entry["id"]), float(entry["at"]))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def _append_cancellation(path: Path | None, job_id: str, at: float) -> None:
    if path is None:
        return
    with path.open("a", encoding="utf-8") as journal:
        journal.write(json.dumps({"id": job_id, "at": at}) + "\n")
        journal.flush()
        os.fsync(journal.fileno())


def _iso(ns: int, nanos: bool) -> str:
    """ISO 8601 UTC with `Z`, microseconds or (like some Replicate answers) nanoseconds."""
    seconds, fraction = divmod(ns, NS_PER_S)
    whole = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{fraction:09d}Z" if nanos else f"{whole}.{fraction // 1000:06d}Z"


class SimulatedReplicate:
    """Replicate's predictions and trainings as a function of the clock, without HTTP.

    `anchor` is the scenario's time zero (epoch seconds, default: the clock at
    construction); pass a persisted one to continue a story after a restart.
    `speed` scales the scenario: 2.0 plays it twice as fast. The older history
    is laid out in real time before the anchor and does not scale. `faults`
    draws faults at a seeded rate (default: `FaultPlan.from_env()`, none when
    the variables are unset); `inject_faults` queues exact ones ahead of those.
    `cancellations_file`, when given, keeps the cancellations made through the
    API (one JSON line each, written and fsynced before the cancel answers),
    so a restart continues the story with them: a job canceled stays canceled.
    """

    def __init__(
        self,
        *,
        anchor: float | None = None,
        clock: Clock = time.time,
        speed: float = 1.0,
        token: str = DEFAULT_TOKEN,
        seed: int = DEFAULT_SEED,
        webhook_secret: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        history_size: int = HISTORY_SIZE,
        faults: FaultPlan | None = None,
        cancellations_file: Path | None = None,
    ) -> None:
        if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, not {speed!r}")
        if not token:
            raise ValueError("the simulator needs a non-empty token")
        self.clock = clock
        self.anchor = float(clock() if anchor is None else anchor)
        self.speed = float(speed)
        self.seed = seed
        self.token = token
        self.base_url = base_url.rstrip("/")
        self.webhook_secret = webhook_secret or (
            "whsec_" + base64.b64encode(seeded.digest(seed, "webhook-secret")[:24]).decode("ascii")
        )
        self._lock = threading.Lock()
        self._cancellations_file = cancellations_file
        self._cancellations: dict[str, float] = _read_cancellations(cancellations_file)
        plan = FaultPlan.from_env() if faults is None else faults
        self._faults = _Faults(plan, random.Random(seed if plan.seed is None else plan.seed))
        self._requests: Counter[tuple[str, str]] = Counter()
        trainings = {
            spec.key: scenario_training(spec, anchor=self.anchor, speed=self.speed, seed=seed) for spec in SCENARIO
        }
        jobs = [*trainings.values(), *prediction_history(history_size, anchor=self.anchor, seed=seed)]
        self._jobs: tuple[Job, ...] = tuple(sorted(jobs, key=lambda job: job.sort_key, reverse=True))
        self._by_id = {job.id: job for job in self._jobs}
        self.scenario_ids: dict[str, str] = {key: job.id for key, job in trainings.items()}

    # ------------------------------------------------------------------ state at a moment

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _end(self, job: Job, now: float) -> tuple[float, str, bool]:
        """(when, terminal status, canceled through the API) as known at `now`."""
        with self._lock:
            canceled = self._cancellations.get(job.id)
        if canceled is not None and canceled <= now and canceled < job.ended:
            return canceled, "canceled", True
        return job.ended, job.outcome, False

    def _visible(self, job: Job | None, now: float, kind: str | None) -> Job | None:
        if job is None or job.created > now or (kind is not None and job.kind != kind):
            return None
        return job

    def _object(self, job: Job, now: float, base_url: str, *, with_logs: bool) -> JobObject:
        end, end_status, by_api = self._end(job, now)
        started = job.started if job.started is not None and job.started < end else None
        if now >= end:
            status = end_status
        elif started is not None and now >= started:
            status = "processing"
        else:
            status = "starting"
        terminal = status in TERMINAL_STATUSES
        removed = terminal and now >= end + RETENTION_SECONDS
        if status == "starting" or started is None or removed:
            logs = ""
        elif terminal and not by_api:
            logs = job.script.text
        else:
            # A job canceled through the API stops logging at the cancel.
            logs = job.script.at((min(now, end) - started) * job.script_speed)
        metrics: dict[str, float] = {}
        if terminal:
            if started is not None:
                metrics["predict_time"] = round(end - started, 6)
            metrics["total_time"] = round(end - job.created, 6)
        drop_data = removed and job.kind == "prediction"
        collection = "trainings" if job.kind == "training" else "predictions"
        nanos = job.nanosecond_timestamps
        item: JobObject = {
            "id": job.id,
            "model": job.model,
            "version": job.version,
            "input": {} if drop_data else dict(job.input),
            "output": job.output if status == "succeeded" and not drop_data else None,
            "logs": logs,
            "error": job.error if status == "failed" else None,
            "status": status,
            "created_at": _iso(job.created_ns, nanos),
            "started_at": _iso(job.started_ns, nanos) if started is not None and job.started_ns else None,
            "completed_at": self._completed_at(job, end, by_api) if terminal else None,
            "metrics": metrics,
            "urls": {
                "get": f"{base_url}/{collection}/{job.id}",
                "cancel": f"{base_url}/{collection}/{job.id}/cancel",
                "web": f"https://replicate.com/p/{job.id}",
            },
            "source": job.source,
            "data_removed": removed,
        }
        if not with_logs:
            del item["logs"]
        return item

    def _completed_at(self, job: Job, end: float, by_api: bool) -> str:
        nanos = job.nanosecond_timestamps
        return _iso(epoch_ns(self.seed, end, nanos, job.id, "canceled") if by_api else job.ended_ns, nanos)

    # ------------------------------------------------------------------ the API, without HTTP

    def get(
        self, job_id: str, kind: str | None = None, *, now: float | None = None, base_url: str | None = None
    ) -> JobObject | None:
        """The full object (with logs), or None when there is no such job (yet). kind: "training" or None."""
        moment = self._now(now)
        job = self._visible(self._by_id.get(job_id), moment, kind)
        return None if job is None else self._object(job, moment, base_url or self.base_url, with_logs=True)

    def jobs(
        self, kind: str | None = None, *, now: float | None = None, base_url: str | None = None
    ) -> list[JobObject]:
        """Every job that exists at `now`, newest first, as list items (no logs)."""
        moment = self._now(now)
        return [
            self._object(job, moment, base_url or self.base_url, with_logs=False)
            for job in self._jobs
            if self._visible(job, moment, kind)
        ]

    def cancel(
        self, job_id: str, kind: str | None = None, *, now: float | None = None, base_url: str | None = None
    ) -> JobObject | None:
        """Cancel an active job (it stays canceled); a finished one is returned as it is. None: unknown id."""
        moment = self._now(now)
        job = self._visible(self._by_id.get(job_id), moment, kind)
        if job is None:
            return None
        end, _, _ = self._end(job, moment)
        if moment < end:
            with self._lock:
                if job.id not in self._cancellations:
                    self._cancellations[job.id] = moment
                    _append_cancellation(self._cancellations_file, job.id, moment)
        return self._object(job, moment, base_url or self.base_url, with_logs=True)

    @property
    def cancellations(self) -> dict[str, float]:
        """Jobs canceled through the API: id → epoch seconds."""
        with self._lock:
            return dict(self._cancellations)

    def list_page(
        self,
        collection: str,
        *,
        base_url: str | None = None,
        cursor: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        now: float | None = None,
    ) -> JobObject:
        """One page of `predictions` (everything) or `trainings`: `{next, previous, results}`.

        `next`/`previous` are full URLs under `base_url` (the `/v1` root the
        client used). Raises BadRequest for an unreadable cursor or time.
        """
        if collection not in ("predictions", "trainings"):
            raise BadRequest(f"unknown collection {collection!r}")
        base = (base_url or self.base_url).rstrip("/")
        moment = self._now(now)
        query: dict[str, str] = {}
        low, high = None, None
        if created_after is not None:
            low, query["created_after"] = query_time("created_after", created_after), created_after
        if created_before is not None:
            high, query["created_before"] = query_time("created_before", created_before), created_before
        kind = "training" if collection == "trainings" else None
        candidates = [
            job
            for job in self._jobs
            if self._visible(job, moment, kind)
            and (low is None or job.created_ns >= low)
            and (high is None or job.created_ns < high)
        ]
        page = page_of(candidates, cursor)
        keys = [job.sort_key for job in candidates]  # descending

        def link(direction: str, job: Job) -> str:
            return f"{base}/{collection}?" + urlencode({**query, "cursor": encode_cursor(direction, job.sort_key)})

        has_older = bool(page) and keys[-1] < page[-1].sort_key
        has_newer = bool(page) and keys[0] > page[0].sort_key
        return {
            "next": link("n", page[-1]) if has_older else None,
            "previous": link("p", page[0]) if has_newer and cursor is not None else None,
            "results": [self._object(job, moment, base, with_logs=False) for job in page],
        }

    def account(self) -> JobObject:
        return dict(ACCOUNT)

    # ------------------------------------------------------------------ auth, faults, counters

    def authorized(self, authorization: str | None) -> bool:
        """`Bearer <token>` or `Token <token>` with the configured token."""
        scheme, _, credential = (authorization or "").strip().partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return False
        return hmac.compare_digest(credential.strip().encode(), self.token.encode())

    @property
    def fault_plan(self) -> FaultPlan:
        return self._faults.plan

    def inject_faults(self, fault: int | str | Iterable[int | str] = 429, count: int = 1) -> None:
        """Make the next requests meet these faults, ahead of any drawn at the plan's rate.

        `fault`: an HTTP error status (429 throttled as Replicate does, 5xx), a
        kind from FAULT_KINDS, or a sequence of them (each queued `count` times, in order).
        """
        if not isinstance(count, int) or count < 0:
            raise ValueError("inject_faults takes a non-negative count")
        faults = [_fault(fault)] if isinstance(fault, (int, str)) else [_fault(one) for one in fault]
        with self._lock:
            self._faults.queued.extend(one for one in faults for _ in range(count))

    def clear_faults(self) -> None:
        """Forget the queued faults (the plan's rate still applies)."""
        with self._lock:
            self._faults.queued.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults.queued)

    @property
    def faults_met(self) -> Counter[str]:
        """Faults answered so far, by kind."""
        with self._lock:
            return Counter(self._faults.met)

    def record_request(self, method: str, path: str, query: str = "") -> Fault | None:
        """Count a request; returns the fault it must meet instead of its answer, if any."""
        with self._lock:
            self._requests[(method.upper(), path)] += 1
            fault = self._faults.next(f"{method.upper()} {path}?{query}", self.clock())
            if fault is not None:
                self._faults.met[fault.kind] += 1
            return fault

    @property
    def request_counts(self) -> Counter[tuple[str, str]]:
        """Requests seen so far, by (method, path)."""
        with self._lock:
            return Counter(self._requests)

    def request_count(self, method: str | None = None, path_prefix: str = "") -> int:
        """How many requests matched `method` (any when None) on a path starting with `path_prefix`."""
        with self._lock:
            return sum(
                count
                for (seen_method, path), count in self._requests.items()
                if (method is None or seen_method == method.upper()) and path.startswith(path_prefix)
            )

    def reset_request_counts(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ webhooks

    def due_webhooks(self, since: float, until: float) -> list[WebhookEvent]:
        """Webhooks for training status changes and log updates in (since, until], oldest first.

        `start` when a job starts processing, `logs` every LOGS_WEBHOOK_EVERY
        seconds while it runs, `completed` when it reaches a terminal status
        (also when canceled through the API). The older history sends none.
        """
        events: list[WebhookEvent] = []
        for job in self._jobs:
            if job.kind != "training" or job.ended <= since:
                continue
            end, _, _ = self._end(job, until)
            started = job.started if job.started is not None and job.started < end else None
            if started is not None:
                if since < started <= until:
                    events.append(WebhookEvent(job.id, "start", started, f"msg_{job.id}_start"))
                first = max(1, math.floor((since - started) / LOGS_WEBHOOK_EVERY) + 1)
                tick = first
                while (at := started + tick * LOGS_WEBHOOK_EVERY) <= until and at < end:
                    if at > since:
                        events.append(WebhookEvent(job.id, "logs", at, f"msg_{job.id}_logs_{tick}"))
                    tick += 1
            if since < end <= until:
                events.append(WebhookEvent(job.id, "completed", end, f"msg_{job.id}_completed"))
        return sorted(events, key=lambda event: (event.at, event.job_id))

    def webhook_request(self, event: WebhookEvent, *, timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
        """The headers and raw body of `event`, signed with the simulator's secret (Standard Webhooks)."""
        job = self._by_id[event.job_id]
        body = json.dumps(
            self._object(job, event.at, self.base_url, with_logs=True), ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
        sent_at = str(int(self.clock()) if timestamp is None else int(timestamp))
        headers = {
            "content-type": "application/json",
            "user-agent": "Replicate-Webhook/simulator",
            "webhook-id": event.webhook_id,
            "webhook-timestamp": sent_at,
            "webhook-signature": sign_webhook(self.webhook_secret, event.webhook_id, sent_at, body),
        }
        return headers, body
