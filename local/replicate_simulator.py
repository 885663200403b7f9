"""A Replicate API simulator for the local stack: scripted trainings, history, webhooks.

`make run` works without internet, so jobsync's Replicate client talks to this
instead. It answers the way the real API does (see
shared/reference/replicate-api-facts.md): `Bearer`/`Token` auth, problem+json
errors, `{next, previous, results}` pages of 100 newest first, training objects
whose logs grow the way SimpleTuner and tqdm write them, and Standard Webhooks.

Every answer is a pure function of (anchor, speed, seed, clock reading) plus
the cancellations made through the API: the same clock reading gives the same
answer, and a restart with the same anchor continues the same story instead of
replaying it. `SimulatedReplicate` holds state and behaviour without HTTP;
`create_app` serves it under `/v1`; `main` runs it with uvicorn.

Run standalone (with `layers/jobsync` on the path):
    python -m local.replicate_simulator --port 8002 --token r8_local [--anchor EPOCH] [--speed 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import bisect
import contextlib
import hashlib
import hmac
import json
import logging
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from jobsync.domain.webhook_signature import sign_webhook

log = logging.getLogger("local.replicate_simulator")

Clock = Callable[[], float]
JobObject = dict[str, Any]

DEFAULT_TOKEN = "r8_jobsync_simulator"
DEFAULT_SEED = 1337
DEFAULT_BASE_URL = "https://api.replicate.com/v1"
PAGE_SIZE = 100
HISTORY_SIZE = 230
RETENTION_SECONDS = 3600.0
LOGS_WEBHOOK_EVERY = 5.0
WEBHOOK_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # about a minute, like Replicate
ACTIVE_STATUSES = frozenset({"starting", "processing"})
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "aborted"})
THROTTLE_DETAIL = "Request was throttled. Your rate limit resets in ~1s."
ACCOUNT = {"type": "user", "username": "jobsync-simulator", "name": "jobsync simulator", "github_url": None}
_NS_PER_S = 1_000_000_000


# --------------------------------------------------------------------------- small helpers


def _digest(seed: int, *parts: object) -> bytes:
    return hashlib.sha256("/".join(str(part) for part in (seed, *parts)).encode()).digest()


def _replicate_id(seed: int, *parts: object) -> str:
    """26 lowercase base32 characters, like `rrr4z55ocneg2rdh4bh4q9c6pc`."""
    return base64.b32encode(_digest(seed, "id", *parts)).decode("ascii").lower()[:26]


def _token(seed: int, *parts: object, length: int = 40) -> str:
    return base64.b32encode(_digest(seed, "token", *parts)).decode("ascii").lower()[:length]


def _hex(seed: int, *parts: object) -> str:
    return _digest(seed, "hex", *parts).hex()


def _extra_ns(seed: int, *parts: object) -> int:
    """Three more digits for a nanosecond-precision timestamp (never 000)."""
    return 1 + int.from_bytes(_digest(seed, "ns", *parts)[:4], "big") % 999


def _iso(ns: int, nanos: bool) -> str:
    """ISO 8601 UTC with `Z`, microseconds or (like some Replicate answers) nanoseconds."""
    seconds, fraction = divmod(ns, _NS_PER_S)
    whole = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{fraction:09d}Z" if nanos else f"{whole}.{fraction // 1000:06d}Z"


_QUERY_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d{1,9})\d*)?)?"
    # A `+` sent unencoded in a query string arrives as a space.
    r"(?P<offset>[Zz]|[+\- ]\d{2}:?\d{2})?"
)


def _parse_query_time(text: str) -> int:
    """`created_after`/`created_before` as integer nanoseconds since the epoch; ValueError if unreadable."""
    match = _QUERY_TIME.fullmatch(text.strip())
    if not match:
        raise ValueError(text)
    clock = match["time"] or "00:00:00"
    clock = clock if clock.count(":") == 2 else clock + ":00"
    offset = match["offset"] or "Z"
    offset = "+00:00" if offset in "Zz" else "+" + offset[1:] if offset[0] == " " else offset
    if len(offset) == 5:
        offset = offset[:3] + ":" + offset[3:]
    moment = datetime.fromisoformat(f"{match['date']}T{clock}{offset}")
    return int(moment.timestamp()) * _NS_PER_S + int((match["fraction"] or "0").ljust(9, "0"))


# --------------------------------------------------------------------------- logs as a function of time


@dataclass(frozen=True)
class _Script:
    """A log that grows over time: the text written by `times[i]` seconds is `text[:ends[i]]`."""

    text: str
    times: tuple[float, ...]
    ends: tuple[int, ...]
    duration: float

    def at(self, elapsed: float) -> str:
        written = bisect.bisect_right(self.times, elapsed)
        return self.text[: self.ends[written - 1]] if written else ""


class _ScriptWriter:
    """Writes a log the way a process does: lines, and tqdm bars rewritten in place with `\\r`."""

    def __init__(self) -> None:
        self.t = 0.0
        self._parts: list[tuple[float, str]] = []
        self._bar_open = False

    def wait(self, seconds: float) -> None:
        self.t += seconds

    def line(self, text: str, after: float = 0.0) -> None:
        self.t += after
        # A print while a bar is on screen starts on a fresh line, as with tqdm.
        self._parts.append((self.t, ("\n" if self._bar_open else "") + text + "\n"))
        self._bar_open = False

    def bar(self, text: str, after: float = 0.0) -> None:
        self.t += after
        self._parts.append((self.t, "\r" + text))
        self._bar_open = True

    def cut(self, at: float) -> None:
        """Forget everything written after `at` seconds (a crash or a cancel then)."""
        self._parts = [part for part in self._parts if part[0] <= at]
        self.t = at
        self._bar_open = bool(self._parts) and self._parts[-1][1].startswith("\r")

    def build(self) -> _Script:
        ends, used = [], 0
        for _, text in self._parts:
            used += len(text)
            ends.append(used)
        return _Script(
            text="".join(text for _, text in self._parts),
            times=tuple(t for t, _ in self._parts),
            ends=tuple(ends),
            duration=self.t,
        )


_BAR_WIDTH = 10
_PARTIAL_BLOCKS = " ▏▎▍▌▋▊▉"


def _interval(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _tqdm(desc: str, done: int, total: int, elapsed: float, postfix: str = "") -> str:
    """One tqdm status line: `desc:  45%|████▌     | 450/1000 [05:12<06:21,  1.44it/s, postfix]`."""
    fraction = done / total
    full, partial = divmod(int(fraction * _BAR_WIDTH * 8), 8)
    bar = ("█" * full + (_PARTIAL_BLOCKS[partial] if full < _BAR_WIDTH else "")).ljust(_BAR_WIDTH)
    head = f"{desc}: {fraction * 100:3.0f}%|{bar}| {done}/{total}"
    if done == 0 or elapsed <= 0:
        return f"{head} [00:00<?, ?it/s]"
    rate = done / elapsed
    speed = f"{rate:5.2f}it/s" if rate >= 1 else f"{1 / rate:5.2f}s/it"
    tail = f", {postfix}" if postfix else ""
    return f"{head} [{_interval(elapsed)}<{_interval((total - done) / rate)}, {speed}{tail}]"


def _loss(rng: random.Random, step: int, steps: int, start: float, floor: float) -> float:
    return (floor + (start - floor) * math.exp(-step / (0.35 * steps))) * rng.uniform(0.86, 1.14)


def _flux_log(rng: random.Random, steps: int, rate: float, images: int) -> _ScriptWriter:
    """A FLUX LoRA trainer: preprocessing, warm-up, a tqdm bar, checkpoints with validation samples."""
    desc = "flux_train_replicate"
    w = _ScriptWriter()
    w.line(f"Using seed: {rng.randrange(1, 65536)}")
    w.line("Loading dataset: extracting input_images.zip", 0.8)
    w.line(f"Loading dataset: found {images} images and {images} captions", 2.4)
    w.line(f"Preprocessing {images} images: resizing into 512, 768 and 1024 px buckets", 1.6)
    w.line("Preprocessing: caching latents with the FLUX VAE", 2.9)
    w.line(f"Preprocessing: cached latents for {images}/{images} images", 4.1)
    w.line("Loading FLUX.1-dev transformer, T5 and CLIP text encoders onto cuda:0", 2.2)
    w.line("Warming up the model: compiling attention kernels ...", 5.7)
    w.line(f"Warming up: first forward and backward pass took {rng.uniform(6, 9):.1f}s", 7.4)
    every, checkpoint_every = 2, max(steps // 4, 2)
    loss_start, loss_floor, lr = rng.uniform(0.42, 0.55), rng.uniform(0.17, 0.24), 4e-4
    elapsed = 0.0
    w.bar(_tqdm(desc, 0, steps, 0.0), 1.0)
    for done in range(every, steps + 1, every):
        step_time = every / rate * rng.uniform(0.93, 1.07)
        elapsed += step_time
        loss = _loss(rng, done, steps, loss_start, loss_floor)
        w.bar(_tqdm(desc, done, steps, elapsed, f"lr: {lr:.1e} loss: {loss:.3e}"), step_time)
        if done % checkpoint_every == 0 and done < steps:
            paused_from = w.t
            w.line(f"Saving checkpoint to /src/output/{desc}/{desc}_{done:09d}.safetensors", 0.3)
            w.line(f"Running validation at step {done}: generating 2 sample images", rng.uniform(3.0, 5.0))
            w.line(f"Validation samples written to /src/output/{desc}/samples/", rng.uniform(9.0, 13.0))
            w.wait(0.7)
            elapsed += w.t - paused_from
    w.line(f"Saving checkpoint to /src/output/{desc}/{desc}.safetensors", 0.6)
    w.line("Packing LoRA weights and config into trained_model.tar", 3.5)
    w.line(f"Training complete: {steps} steps in {_interval(elapsed)}", 4.2)
    return w


def _simpletuner_log(rng: random.Random, steps: int, rate: float, images: int) -> _ScriptWriter:
    """SimpleTuner (SDXL LoRA): `Step N/M - loss: x` lines, `[TRAINING]` reports, validation, checkpoints."""
    w = _ScriptWriter()
    w.line(f"SimpleTuner: sdxl lora training on 1x NVIDIA H100 80GB HBM3, seed {rng.randrange(1, 65536)}")
    w.line("Loading configuration from config/config.json", 0.6)
    w.line(f"Loading dataset 'subject' from /src/datasets/subject ({images} images)", 1.3)
    w.line("Preprocessing: computing aspect ratio buckets", 1.9)
    w.line(f"Preprocessing: encoded VAE latents for {images}/{images} images", 5.8)
    w.line(f"Preprocessing: cached text embeddings for {images} captions", 3.6)
    w.line("Loading SDXL base 1.0 unet, vae and text encoders", 2.7)
    warmup = max(steps // 20, 10)
    w.line(f"Warming up: learning rate warmup over {warmup} steps", 4.8)
    w.line("Warming up: first optimizer pass done", 3.9)
    every, report_every = 5, 50
    checkpoint_every = max(steps // 4 // every * every, every)
    loss_start, loss_floor, base_lr = rng.uniform(0.13, 0.17), rng.uniform(0.045, 0.065), 1e-4
    for done in range(every, steps + 1, every):
        step_time = every / rate * rng.uniform(0.92, 1.08)
        w.line(f"Step {done}/{steps} - loss: {_loss(rng, done, steps, loss_start, loss_floor):.4f}", step_time)
        if done % report_every == 0:
            lr = base_lr * min(1.0, done / warmup)
            w.line(
                f"[TRAINING] Step {done}/{steps} ({100 * done / steps:.1f}%) - lr: {lr:.1e}, "
                f"{every / step_time:.2f} steps/s",
                0.02,
            )
        if done % checkpoint_every == 0 and done < steps:
            w.line(f"Running validation at step {done}: 2 prompts, 30 inference steps each", 0.4)
            w.line(f"Validation images written to /src/output/validation/step-{done}/", rng.uniform(8.0, 11.0))
            w.line(f"Saving checkpoint to /src/output/checkpoint-{done}", 0.3)
            w.line(f"Checkpoint saved ({rng.uniform(160, 190):.1f} MB)", rng.uniform(2.5, 4.0))
    w.line("Saving checkpoint to /src/output/checkpoint-final", 0.5)
    w.line("Exporting LoRA weights to /src/output/pytorch_lora_weights.safetensors", 3.1)
    w.line(f"Training complete after {steps} steps; packing trained_model.tar", 2.6)
    return w


_CUDA_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of "
    "79.11 GiB of which 1.37 GiB is free. Of the allocated memory 75.02 GiB is allocated by PyTorch, and "
    "1.21 GiB is reserved by PyTorch but unallocated."
)
_OOM_TRACEBACK = (
    "Traceback (most recent call last):",
    '  File "/src/train.py", line 61, in <module>',
    "    main()",
    '  File "/src/helpers/training/trainer.py", line 2480, in train',
    "    self.accelerator.backward(loss)",
    '  File "/usr/local/lib/python3.11/site-packages/torch/autograd/__init__.py", line 289, in backward',
    "    _engine_run_backward(",
    _CUDA_OOM,
)

_LOG_STYLES: dict[str, Callable[[random.Random, int, float, int], _ScriptWriter]] = {
    "flux": _flux_log,
    "simpletuner": _simpletuner_log,
}


# --------------------------------------------------------------------------- the jobs


@dataclass(frozen=True)
class _Job:
    """A job's whole life, fixed at construction; what it shows depends only on the clock."""

    id: str
    kind: str  # "training" or "prediction"
    model: str
    version: str
    input: dict[str, Any]
    output: Any  # shown once it has succeeded
    error: str | None  # shown once it has failed
    outcome: str  # the terminal status it reaches unless canceled first
    source: str
    nanos: bool  # nanosecond-precision timestamps
    created: float  # epoch seconds
    started: float | None  # None: it never starts (aborted)
    ended: float
    created_ns: int
    started_ns: int | None
    ended_ns: int
    script: _Script
    script_speed: float  # script seconds per real second of running

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.created_ns, self.id)


@dataclass(frozen=True)
class _ScenarioJob:
    """One scripted training, in scenario seconds relative to the anchor (before `speed`)."""

    key: str
    model: str
    style: str
    steps: int
    rate: float  # steps per second
    images: int
    queue: float  # seconds in `starting`
    outcome: str
    starts_at: float | None = None  # give either starts_at ...
    ends_at: float | None = None  # ... or ends_at
    run_for: float | None = None  # failed/canceled: seconds of running before the end
    nanos: bool = False
    source: str = "api"
    config_name: str | None = None
    destination: str = "jobsync-demo/lora"


# Offsets at speed 1 (seconds from the anchor, each within about a second):
#   flux-long       created  -96, processing from  -77, succeeds at ~+1230 (the ~20 min one)
#   sdxl-queued     created   -7, starting → processing at ~+32, succeeds at ~+610
#   flux-finishing  created -558, processing, succeeds at ~+97
#   sdxl-oom        created -136, processing, fails (CUDA out of memory) at ~+169
#   flux-canceled   created  -49, processing, canceled at ~+229
#   sdxl-new        created  +75 (absent before), processing at ~+97, succeeds at ~+318
#   flux-earlier    finished at -1734 (its logs are there until data removal at ~+1866)
SCENARIO: tuple[_ScenarioJob, ...] = (
    _ScenarioJob(
        "flux-long",
        "jobsync-demo/flux-lora-trainer",
        "flux",
        1000,
        0.82,
        24,
        queue=18.2,
        outcome="succeeded",
        starts_at=-77.2,
        nanos=True,
        config_name="portrait-lora-v3",
        destination="jobsync-demo/portrait-lora",
    ),
    _ScenarioJob(
        "sdxl-queued",
        "jobsync-demo/simpletuner-sdxl",
        "simpletuner",
        800,
        1.6,
        36,
        queue=37.8,
        outcome="succeeded",
        starts_at=31.5,
        config_name="sdxl-subject-v2",
        destination="jobsync-demo/sdxl-subject",
    ),
    _ScenarioJob(
        "flux-finishing",
        "jobsync-demo/flux-lora-trainer",
        "flux",
        600,
        1.1,
        18,
        queue=24.5,
        outcome="succeeded",
        ends_at=96.0,
        nanos=True,
        config_name="product-shots",
        destination="jobsync-demo/product-lora",
    ),
    _ScenarioJob(
        "sdxl-oom",
        "jobsync-demo/simpletuner-sdxl",
        "simpletuner",
        1200,
        1.3,
        48,
        queue=12.0,
        outcome="failed",
        ends_at=167.5,
        run_for=291.0,
        config_name="sdxl-hires-batch8",
        destination="jobsync-demo/sdxl-hires",
    ),
    _ScenarioJob(
        "flux-canceled",
        "jobsync-demo/flux-lora-trainer",
        "flux",
        1000,
        0.9,
        20,
        queue=15.3,
        outcome="canceled",
        ends_at=228.4,
        run_for=262.0,
        nanos=True,
        config_name="style-watercolor",
        destination="jobsync-demo/watercolor-lora",
    ),
    _ScenarioJob(
        "sdxl-new",
        "jobsync-demo/simpletuner-sdxl",
        "simpletuner",
        300,
        2.0,
        16,
        queue=21.7,
        outcome="succeeded",
        starts_at=96.4,
        config_name="sdxl-quick",
        destination="jobsync-demo/sdxl-quick",
    ),
    _ScenarioJob(
        "flux-earlier",
        "jobsync-demo/flux-lora-trainer",
        "flux",
        800,
        1.0,
        30,
        queue=40.2,
        outcome="succeeded",
        ends_at=-1735.0,
        nanos=True,
        source="web",
        config_name="portrait-lora-v2",
        destination="jobsync-demo/portrait-lora",
    ),
)

# (model, weight, seconds of running (low, high), output kind)
_HISTORY_MODELS: tuple[tuple[str, float, tuple[float, float], str], ...] = (
    ("black-forest-labs/flux-schnell", 0.42, (0.6, 2.5), "webp"),
    ("black-forest-labs/flux-dev", 0.2, (2.0, 9.0), "webp"),
    ("stability-ai/sdxl", 0.14, (3.0, 12.0), "png"),
    ("meta/meta-llama-3-8b-instruct", 0.14, (0.5, 6.0), "text"),
    ("jobsync-demo/portrait-lora", 0.1, (3.0, 10.0), "webp"),
)
_HISTORY_STATUSES = (("succeeded", 0.84), ("failed", 0.07), ("canceled", 0.05), ("aborted", 0.04))
_PREDICTION_ERRORS = (
    "NSFW content detected. Try running it again, or try a different prompt.",
    "Prediction interrupted; please retry (code: PA)",
    _CUDA_OOM,
)
_PROMPTS = (
    "a photo of TOK hiking in the alps, golden hour",
    "a watercolor fox in a misty forest",
    "an isometric city block at night, neon signs",
    "a ceramic teapot on a linen tablecloth, studio light",
)


class BadRequest(ValueError):
    """A request the real API would refuse with 400."""


@dataclass(frozen=True)
class WebhookEvent:
    """One webhook Replicate would send: `event` is `start`, `logs` or `completed`."""

    job_id: str
    event: str
    at: float  # epoch seconds; the body shows the job as it was then
    webhook_id: str


# --------------------------------------------------------------------------- the simulator


class SimulatedReplicate:
    """Replicate's predictions and trainings as a function of the clock, without HTTP.

    `anchor` is the scenario's time zero (epoch seconds, default: the clock at
    construction); pass a persisted one to continue a story after a restart.
    `speed` scales the scenario: 2.0 plays it twice as fast. The older history
    is laid out in real time before the anchor and does not scale.
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
            "whsec_" + base64.b64encode(_digest(seed, "webhook-secret")[:24]).decode("ascii")
        )
        self._lock = threading.Lock()
        self._cancellations: dict[str, float] = {}
        self._faults: deque[int] = deque()
        self._requests: Counter[tuple[str, str]] = Counter()
        jobs = [self._scenario_job(index, spec) for index, spec in enumerate(SCENARIO)]
        jobs += self._history(history_size)
        self._jobs: tuple[_Job, ...] = tuple(sorted(jobs, key=lambda job: job.sort_key, reverse=True))
        self._by_id = {job.id: job for job in self._jobs}
        self.scenario_ids: dict[str, str] = {spec.key: jobs[index].id for index, spec in enumerate(SCENARIO)}

    # ------------------------------------------------------------------ building the story

    def _ns(self, epoch: float, nanos: bool, *parts: object) -> int:
        return round(epoch * 1_000_000) * 1000 + (_extra_ns(self.seed, *parts) if nanos else 0)

    def _make_job(
        self,
        job_id: str,
        *,
        created: float,
        started: float | None,
        ended: float,
        nanos: bool,
        script: _Script,
        script_speed: float,
        **fields: Any,
    ) -> _Job:
        created_ns = self._ns(created, nanos, job_id, "created")
        started_ns = None if started is None else self._ns(started, nanos, job_id, "started")
        ended_ns = self._ns(ended, nanos, job_id, "completed")
        return _Job(
            id=job_id,
            nanos=nanos,
            # The epochs the clock is compared with are the shown timestamps, to the nanosecond.
            created=created_ns / _NS_PER_S,
            started=None if started_ns is None else started_ns / _NS_PER_S,
            ended=ended_ns / _NS_PER_S,
            created_ns=created_ns,
            started_ns=started_ns,
            ended_ns=ended_ns,
            script=script,
            script_speed=script_speed,
            **fields,
        )

    def _scenario_job(self, index: int, spec: _ScenarioJob) -> _Job:
        rng = random.Random(int.from_bytes(_digest(self.seed, "scenario", spec.key)[:8], "big"))
        writer = _LOG_STYLES[spec.style](rng, spec.steps, spec.rate, spec.images)
        if spec.outcome in ("failed", "canceled"):
            if spec.run_for is None or spec.run_for >= writer.t:
                raise ValueError(f"{spec.key}: run_for must end before the training would")
            writer.cut(spec.run_for)
            if spec.outcome == "failed":
                for line in _OOM_TRACEBACK:
                    writer.line(line, 0.01)
        script = writer.build()
        running = script.duration
        starts_at = spec.starts_at if spec.starts_at is not None else spec.ends_at - running  # type: ignore[operator]
        job_id = _replicate_id(self.seed, "training", spec.key)
        jitter = [rng.random() * 0.9 for _ in range(3)]
        succeeded = spec.outcome == "succeeded"
        return self._make_job(
            job_id,
            kind="training",
            model=spec.model,
            version=_hex(self.seed, "trainer", spec.model),
            input={
                "input_images": f"https://replicate.delivery/pbxt/{_token(self.seed, 'zip', spec.key)}/images.zip",
                "steps": spec.steps,
                "lora_rank": 16,
                "learning_rate": 0.0004 if spec.style == "flux" else 0.0001,
                "config_name": spec.config_name,
            },
            output=(
                {
                    "version": f"{spec.destination}:{_hex(self.seed, 'output', spec.key)}",
                    "weights": f"https://replicate.delivery/xezq/{_token(self.seed, 'weights', spec.key)}"
                    "/trained_model.tar",
                }
                if succeeded
                else None
            ),
            error=_CUDA_OOM if spec.outcome == "failed" else None,
            outcome=spec.outcome,
            source=spec.source,
            nanos=spec.nanos,
            # Sub-second jitter, so the timestamps do not look like round offsets from the anchor.
            created=self.anchor + (starts_at - spec.queue - jitter[0]) / self.speed,
            started=self.anchor + (starts_at + jitter[1]) / self.speed,
            ended=self.anchor + (starts_at + jitter[1] + running + jitter[2]) / self.speed,
            script=script,
            script_speed=self.speed,
        )

    def _history(self, size: int) -> list[_Job]:
        """Older finished predictions, laid out in real seconds before the anchor."""
        rng = random.Random(int.from_bytes(_digest(self.seed, "history")[:8], "big"))
        models = [model for model, *_ in _HISTORY_MODELS]
        weights = [weight for _, weight, *_ in _HISTORY_MODELS]
        statuses, status_weights = zip(*_HISTORY_STATUSES, strict=True)
        jobs, age = [], 900.0
        for index in range(size):
            age += rng.uniform(400.0, 1900.0)
            model_index = rng.choices(range(len(models)), weights)[0]
            model, _, (low, high), output_kind = _HISTORY_MODELS[model_index]
            status = rng.choices(statuses, status_weights)[0]
            created = self.anchor - age
            queued = rng.uniform(0.2, 4.0)
            running = rng.uniform(low, high)
            job_id = _replicate_id(self.seed, "prediction", index)
            started: float | None = created + queued
            if status == "aborted":
                started, ended = None, created + rng.uniform(60.0, 600.0)
            elif status == "succeeded":
                ended = started + running
            else:
                ended = started + running * rng.uniform(0.1, 0.8)
            prompt = rng.choice(_PROMPTS)
            writer = _ScriptWriter()
            if started is not None:
                seed = rng.randrange(1, 65536)
                ran = ended - started
                if output_kind == "text":
                    writer.line(f"Random seed used: `{seed}`")
                    writer.line("Note: Random seed will not impact output if greedy decoding is used.", 0.01)
                else:
                    writer.line(f"Using seed: {seed}")
                if status == "succeeded" and output_kind != "text":
                    steps = 4 if model.endswith("schnell") else 28
                    writer.bar(_tqdm("", steps, steps, ran * 0.9).lstrip(": "), ran * 0.9)
                elif status == "failed":
                    writer.line(_PREDICTION_ERRORS[index % len(_PREDICTION_ERRORS)], ran * 0.9)
                writer.wait(max(0.0, ran - writer.t))
            output: Any
            if output_kind == "text":
                output = ["Here", " is", " a", " short", " answer", "."]
            else:
                output = [f"https://replicate.delivery/xezq/{_token(self.seed, 'out', index)}/out-0.{output_kind}"]
            jobs.append(
                self._make_job(
                    job_id,
                    kind="prediction",
                    model=model,
                    version=_hex(self.seed, "version", model),
                    input={"prompt": prompt} if output_kind != "text" else {"prompt": "Say hello", "max_tokens": 64},
                    output=output if status == "succeeded" else None,
                    error=_PREDICTION_ERRORS[index % len(_PREDICTION_ERRORS)] if status == "failed" else None,
                    outcome=status,
                    source="api" if index % 9 else "web",
                    nanos=index % 3 == 0,
                    created=created,
                    started=started,
                    ended=ended,
                    script=writer.build(),
                    script_speed=1.0,
                )
            )
        return jobs

    # ------------------------------------------------------------------ state at a moment

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _end(self, job: _Job, now: float) -> tuple[float, str, bool]:
        """(when, terminal status, canceled through the API) as known at `now`."""
        with self._lock:
            canceled = self._cancellations.get(job.id)
        if canceled is not None and canceled <= now and canceled < job.ended:
            return canceled, "canceled", True
        return job.ended, job.outcome, False

    def _visible(self, job: _Job | None, now: float, kind: str | None) -> _Job | None:
        if job is None or job.created > now or (kind is not None and job.kind != kind):
            return None
        return job

    def _object(self, job: _Job, now: float, base_url: str, *, with_logs: bool) -> JobObject:
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
            logs = job.script.at((min(now, end) - started) * job.script_speed)
        metrics: dict[str, float] = {}
        if terminal:
            if started is not None:
                metrics["predict_time"] = round(end - started, 6)
            metrics["total_time"] = round(end - job.created, 6)
        drop_data = removed and job.kind == "prediction"
        collection = "trainings" if job.kind == "training" else "predictions"
        item: JobObject = {
            "id": job.id,
            "model": job.model,
            "version": job.version,
            "input": {} if drop_data else dict(job.input),
            "output": job.output if status == "succeeded" and not drop_data else None,
            "logs": logs,
            "error": job.error if status == "failed" else None,
            "status": status,
            "created_at": _iso(job.created_ns, job.nanos),
            "started_at": _iso(job.started_ns, job.nanos) if started is not None and job.started_ns else None,
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

    def _completed_at(self, job: _Job, end: float, by_api: bool) -> str:
        return _iso(self._ns(end, job.nanos, job.id, "canceled") if by_api else job.ended_ns, job.nanos)

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
                self._cancellations.setdefault(job.id, moment)
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
            low, query["created_after"] = self._query_time("created_after", created_after), created_after
        if created_before is not None:
            high, query["created_before"] = self._query_time("created_before", created_before), created_before
        kind = "training" if collection == "trainings" else None
        candidates = [
            job
            for job in self._jobs
            if self._visible(job, moment, kind)
            and (low is None or job.created_ns >= low)
            and (high is None or job.created_ns < high)
        ]
        page = self._slice(candidates, cursor)
        keys = [job.sort_key for job in candidates]  # descending

        def link(direction: str, job: _Job) -> str:
            return f"{base}/{collection}?" + urlencode({**query, "cursor": _encode_cursor(direction, job.sort_key)})

        has_older = bool(page) and keys[-1] < page[-1].sort_key
        has_newer = bool(page) and keys[0] > page[0].sort_key
        return {
            "next": link("n", page[-1]) if has_older else None,
            "previous": link("p", page[0]) if has_newer and cursor is not None else None,
            "results": [self._object(job, moment, base, with_logs=False) for job in page],
        }

    @staticmethod
    def _query_time(name: str, value: str) -> int:
        try:
            return _parse_query_time(value)
        except ValueError:
            raise BadRequest(f"{name} must be an ISO 8601 date-time, not {value[:60]!r}") from None

    @staticmethod
    def _slice(candidates: list[_Job], cursor: str | None) -> list[_Job]:
        if cursor is None:
            return candidates[:PAGE_SIZE]
        direction, key = _decode_cursor(cursor)
        if direction == "n":  # the next (older) page: keys below the cursor
            return [job for job in candidates if job.sort_key < key][:PAGE_SIZE]
        newer = [job for job in candidates if job.sort_key > key]
        return newer[-PAGE_SIZE:]

    def account(self) -> JobObject:
        return dict(ACCOUNT)

    # ------------------------------------------------------------------ auth, faults, counters

    def authorized(self, authorization: str | None) -> bool:
        """`Bearer <token>` or `Token <token>` with the configured token."""
        scheme, _, credential = (authorization or "").strip().partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return False
        return hmac.compare_digest(credential.strip().encode(), self.token.encode())

    def inject_faults(self, status: int = 429, count: int = 1) -> None:
        """Make the next `count` requests answer `status` (429 throttled, 5xx server error)."""
        if not 400 <= status <= 599 or count < 0:
            raise ValueError("inject_faults takes an HTTP error status and a non-negative count")
        with self._lock:
            self._faults.extend([status] * count)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def record_request(self, method: str, path: str) -> int | None:
        """Count a request; returns the status of an injected fault it must answer with, if any."""
        with self._lock:
            self._requests[(method.upper(), path)] += 1
            return self._faults.popleft() if self._faults else None

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


# --------------------------------------------------------------------------- cursors


def _encode_cursor(direction: str, key: tuple[int, str]) -> str:
    raw = f"{direction}.{key[0]}.{key[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, tuple[int, str]]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        direction, created, job_id = raw.split(".", 2)
        if direction not in ("n", "p") or not job_id:
            raise ValueError(raw)
        return direction, (int(created), job_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("Invalid cursor") from None


# --------------------------------------------------------------------------- webhook sender


Sleep = Callable[[float], Awaitable[Any]]


async def deliver_webhook(
    sim: SimulatedReplicate,
    client: httpx.AsyncClient,
    url: str,
    event: WebhookEvent,
    *,
    retry_delays: Sequence[float] = WEBHOOK_RETRY_DELAYS,
    sleep: Sleep = asyncio.sleep,
) -> int | None:
    """POST one webhook; a `completed` one is retried on non-2xx or transport errors.

    Returns the last HTTP status (None when no answer came). The webhook-id is
    the same on every attempt; timestamp and signature are fresh each time.
    """
    attempts = 1 + (len(retry_delays) if event.event == "completed" else 0)
    status: int | None = None
    for attempt in range(attempts):
        if attempt:
            await sleep(retry_delays[attempt - 1])
        headers, body = sim.webhook_request(event)
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            status = None
            log.warning("webhook %s to %s failed: %s", event.webhook_id, url, type(exc).__name__)
            continue
        status = response.status_code
        if 200 <= status < 300:
            return status
        log.warning("webhook %s to %s answered %s", event.webhook_id, url, status)
    return status


async def deliver_due(
    sim: SimulatedReplicate,
    client: httpx.AsyncClient,
    url: str,
    since: float,
    until: float,
    *,
    retry_delays: Sequence[float] = WEBHOOK_RETRY_DELAYS,
    sleep: Sleep = asyncio.sleep,
) -> list[tuple[WebhookEvent, int | None]]:
    """Send every webhook due in (since, until], concurrently; (event, last status) pairs."""
    events = sim.due_webhooks(since, until)
    statuses = await asyncio.gather(
        *(deliver_webhook(sim, client, url, event, retry_delays=retry_delays, sleep=sleep) for event in events)
    )
    return list(zip(events, statuses, strict=True))


async def webhook_loop(
    sim: SimulatedReplicate,
    url: str,
    *,
    stop: asyncio.Event | None = None,
    interval: float = 1.0,
    client: httpx.AsyncClient | None = None,
    retry_delays: Sequence[float] = WEBHOOK_RETRY_DELAYS,
) -> None:
    """Every `interval` seconds, send the webhooks that fell due since the last tick.

    It starts from the clock's reading, so a restart does not replay the past.
    Deliveries run as tasks: a receiver that is slow or down never holds up
    the loop. Runs until `stop` is set (or the task is cancelled).
    """
    stop = stop or asyncio.Event()
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
    pending: set[asyncio.Task[int | None]] = set()
    since = sim.clock()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            until = sim.clock()
            if until <= since:
                continue
            for event in sim.due_webhooks(since, until):
                task = asyncio.create_task(deliver_webhook(sim, http, url, event, retry_delays=retry_delays))
                pending.add(task)
                task.add_done_callback(pending.discard)
            since = until
    finally:
        for task in list(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if own_client:
            await http.aclose()


# --------------------------------------------------------------------------- HTTP


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"title": title, "detail": detail, "status": status}, status_code=status, media_type="application/problem+json"
    )


def _not_found() -> JSONResponse:
    return _problem(404, "Not found", "Not found.")


def _fault(status: int) -> JSONResponse:
    if status == 429:
        return JSONResponse({"detail": THROTTLE_DETAIL}, status_code=429)
    titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    return _problem(status, titles.get(status, "Error"), "Something went wrong on our end (injected by the simulator).")


class _Gate:
    """Counts every request, answers injected faults, then requires the token."""

    def __init__(self, app: ASGIApp, sim: SimulatedReplicate) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        fault = self.sim.record_request(request.method, request.url.path)
        if fault is not None:
            await _fault(fault)(scope, receive, send)
        elif not self.sim.authorized(request.headers.get("authorization")):
            await _problem(401, "Unauthenticated", "You did not pass a valid authentication token")(
                scope, receive, send
            )
        else:
            await self.app(scope, receive, send)


def _api_base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/v1"


def create_app(
    sim: SimulatedReplicate,
    webhook_url: str | None = None,
    *,
    webhook_interval: float = 1.0,
    webhook_client: httpx.AsyncClient | None = None,
) -> Starlette:
    """The simulator under `/v1`; with `webhook_url`, the webhook loop runs for the app's lifetime."""

    async def account(request: Request) -> Response:
        return JSONResponse(sim.account())

    async def webhook_secret(request: Request) -> Response:
        return JSONResponse({"key": sim.webhook_secret})

    def listing(collection: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            params = request.query_params
            try:
                page = sim.list_page(
                    collection,
                    base_url=_api_base(request),
                    cursor=params.get("cursor"),
                    created_after=params.get("created_after") if collection == "predictions" else None,
                    created_before=params.get("created_before") if collection == "predictions" else None,
                )
            except BadRequest as exc:
                return _problem(400, "Bad request", str(exc))
            return JSONResponse(page)

        return endpoint

    def one(kind: str | None, action: Callable[..., JobObject | None]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            found = action(request.path_params["job_id"], kind, base_url=_api_base(request))
            return _not_found() if found is None else JSONResponse(found)

        return endpoint

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return _not_found()
        return _problem(status, "Method not allowed" if status == 405 else "Error", str(getattr(exc, "detail", "")))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not webhook_url:
            yield
            return
        stop = asyncio.Event()
        task = asyncio.create_task(
            webhook_loop(sim, webhook_url, stop=stop, interval=webhook_interval, client=webhook_client)
        )
        try:
            yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(task, timeout=5.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()

    routes = [
        Route("/v1/account", account, methods=["GET"]),
        Route("/v1/webhooks/default/secret", webhook_secret, methods=["GET"]),
        Route("/v1/predictions", listing("predictions"), methods=["GET"]),
        Route("/v1/trainings", listing("trainings"), methods=["GET"]),
        Route("/v1/predictions/{job_id}", one(None, sim.get), methods=["GET"]),
        Route("/v1/trainings/{job_id}", one("training", sim.get), methods=["GET"]),
        Route("/v1/predictions/{job_id}/cancel", one(None, sim.cancel), methods=["POST"]),
        Route("/v1/trainings/{job_id}/cancel", one("training", sim.cancel), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    app.add_middleware(_Gate, sim=sim)
    app.state.simulator = sim
    return app


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.replicate_simulator", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", required=True, help="the API token clients must send")
    parser.add_argument("--anchor", type=float, default=None, help="scenario time zero, epoch seconds (default: now)")
    parser.add_argument("--speed", type=float, default=1.0, help="play the scenario this many times faster")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--webhook-url", default=None, help="POST signed webhooks for training updates here")
    parser.add_argument("--webhook-secret", default=None, help="whsec_... (default: derived from the seed)")
    parser.add_argument("--log-level", default="warning")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    args = _parser().parse_args(argv)
    sim = SimulatedReplicate(
        anchor=args.anchor,
        speed=args.speed,
        token=args.token,
        seed=args.seed,
        webhook_secret=args.webhook_secret,
        base_url=f"http://{args.host}:{args.port}/v1",
    )
    logging.basicConfig(level=args.log_level.upper())
    log.warning(
        "Replicate simulator on http://%s:%s/v1 (anchor %.3f, speed %g, webhooks %s)",
        args.host,
        args.port,
        sim.anchor,
        sim.speed,
        args.webhook_url or "off",
    )
    uvicorn.run(create_app(sim, args.webhook_url), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
