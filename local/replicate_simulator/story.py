"""The scenario and the history turned into jobs whose whole lives are fixed at construction.

A `Job` holds when it was created, started and ended and the log it writes;
what it shows at a moment is decided in `state.py`. Each job draws from its
own seeded random generator, so one story never shifts another.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from local.replicate_simulator import seeded
from local.replicate_simulator.log_scripts import (
    CUDA_OOM,
    LOG_STYLES,
    OOM_TRACEBACK,
    LogScript,
    LogScriptWriter,
    tqdm_line,
)
from local.replicate_simulator.scenarios import (
    HISTORY_MODELS,
    HISTORY_STATUS_WEIGHTS,
    PREDICTION_ERRORS,
    PROMPTS,
    ScenarioTraining,
)

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Job:
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
    nanosecond_timestamps: bool
    created: float  # epoch seconds
    started: float | None  # None: it never starts (aborted)
    ended: float
    created_ns: int
    started_ns: int | None
    ended_ns: int
    script: LogScript
    script_speed: float  # script seconds per real second of running

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.created_ns, self.id)


def epoch_ns(seed: int, epoch: float, nanos: bool, *parts: object) -> int:
    """`epoch` in integer nanoseconds: microseconds, plus three seeded digits when `nanos`."""
    return round(epoch * 1_000_000) * 1000 + (seeded.extra_ns(seed, *parts) if nanos else 0)


def _make_job(
    seed: int,
    job_id: str,
    *,
    created: float,
    started: float | None,
    ended: float,
    nanosecond_timestamps: bool,
    **fields: Any,
) -> Job:
    created_ns = epoch_ns(seed, created, nanosecond_timestamps, job_id, "created")
    started_ns = None if started is None else epoch_ns(seed, started, nanosecond_timestamps, job_id, "started")
    ended_ns = epoch_ns(seed, ended, nanosecond_timestamps, job_id, "completed")
    return Job(
        id=job_id,
        nanosecond_timestamps=nanosecond_timestamps,
        # The epochs the clock is compared with are the shown timestamps, to the nanosecond.
        created=created_ns / NS_PER_S,
        started=None if started_ns is None else started_ns / NS_PER_S,
        ended=ended_ns / NS_PER_S,
        created_ns=created_ns,
        started_ns=started_ns,
        ended_ns=ended_ns,
        **fields,
    )


def scenario_training(spec: ScenarioTraining, *, anchor: float, speed: float, seed: int) -> Job:
    """One scripted training, placed around `anchor` and played `speed` times faster."""
    rng = random.Random(int.from_bytes(seeded.digest(seed, "scenario", spec.key)[:8], "big"))
    writer = LOG_STYLES[spec.log_style](rng, spec.steps, spec.steps_per_second, spec.images)
    if spec.outcome in ("failed", "canceled"):
        if spec.stops_after is None or spec.stops_after >= writer.t:
            raise ValueError(f"{spec.key}: stops_after must end before the training would")
        writer.cut(spec.stops_after)
        if spec.outcome == "failed":
            for line in OOM_TRACEBACK:
                writer.line(line, 0.01)
    script = writer.build()
    running = script.duration
    starts_at = spec.starts_at if spec.starts_at is not None else spec.ends_at - running  # type: ignore[operator]
    job_id = seeded.replicate_id(seed, "training", spec.key)
    jitter = [rng.random() * 0.9 for _ in range(3)]
    succeeded = spec.outcome == "succeeded"
    return _make_job(
        seed,
        job_id,
        kind="training",
        model=spec.model,
        version=seeded.hex_digest(seed, "trainer", spec.model),
        input={
            "input_images": f"https://replicate.delivery/pbxt/{seeded.token(seed, 'zip', spec.key)}/images.zip",
            "steps": spec.steps,
            "lora_rank": 16,
            "learning_rate": 0.0004 if spec.log_style == "flux" else 0.0001,
            "config_name": spec.config_name,
        },
        output=(
            {
                "version": f"{spec.destination}:{seeded.hex_digest(seed, 'output', spec.key)}",
                "weights": f"https://replicate.delivery/xezq/{seeded.token(seed, 'weights', spec.key)}"
                "/trained_model.tar",
            }
            if succeeded
            else None
        ),
        error=CUDA_OOM if spec.outcome == "failed" else None,
        outcome=spec.outcome,
        source=spec.source,
        nanosecond_timestamps=spec.nanosecond_timestamps,
        # Sub-second jitter, so the timestamps do not look like round offsets from the anchor.
        created=anchor + (starts_at - spec.queue_seconds - jitter[0]) / speed,
        started=anchor + (starts_at + jitter[1]) / speed,
        ended=anchor + (starts_at + jitter[1] + running + jitter[2]) / speed,
        script=script,
        script_speed=speed,
    )


def prediction_history(size: int, *, anchor: float, seed: int) -> list[Job]:
    """Older finished predictions, laid out in real seconds before the anchor (speed does not apply)."""
    rng = random.Random(int.from_bytes(seeded.digest(seed, "history")[:8], "big"))
    model_weights = [model.weight for model in HISTORY_MODELS]
    statuses, status_weights = list(HISTORY_STATUS_WEIGHTS), list(HISTORY_STATUS_WEIGHTS.values())
    jobs, age = [], 900.0
    for index in range(size):
        age += rng.uniform(400.0, 1900.0)
        history_model = HISTORY_MODELS[rng.choices(range(len(HISTORY_MODELS)), model_weights)[0]]
        model, output_kind = history_model.name, history_model.output_kind
        status = rng.choices(statuses, status_weights)[0]
        created = anchor - age
        queued = rng.uniform(0.2, 4.0)
        running = rng.uniform(*history_model.run_seconds)
        job_id = seeded.replicate_id(seed, "prediction", index)
        started: float | None = created + queued
        if status == "aborted":
            started, ended = None, created + rng.uniform(60.0, 600.0)
        elif status == "succeeded":
            ended = started + running
        else:
            ended = started + running * rng.uniform(0.1, 0.8)
        prompt = rng.choice(PROMPTS)
        writer = LogScriptWriter()
        if started is not None:
            prediction_seed = rng.randrange(1, 65536)
            ran = ended - started
            if output_kind == "text":
                writer.line(f"Random seed used: `{prediction_seed}`")
                writer.line("Note: Random seed will not impact output if greedy decoding is used.", 0.01)
            else:
                writer.line(f"Using seed: {prediction_seed}")
            if status == "succeeded" and output_kind != "text":
                steps = 4 if model.endswith("schnell") else 28
                writer.bar(tqdm_line("", steps, steps, ran * 0.9).lstrip(": "), ran * 0.9)
            elif status == "failed":
                writer.line(PREDICTION_ERRORS[index % len(PREDICTION_ERRORS)], ran * 0.9)
            writer.wait(max(0.0, ran - writer.t))
        output: Any
        if output_kind == "text":
            output = ["Here", " is", " a", " short", " answer", "."]
        else:
            output = [f"https://replicate.delivery/xezq/{seeded.token(seed, 'out', index)}/out-0.{output_kind}"]
        jobs.append(
            _make_job(
                seed,
                job_id,
                kind="prediction",
                model=model,
                version=seeded.hex_digest(seed, "version", model),
                input={"prompt": prompt} if output_kind != "text" else {"prompt": "Say hello", "max_tokens": 64},
                output=output if status == "succeeded" else None,
                error=PREDICTION_ERRORS[index % len(PREDICTION_ERRORS)] if status == "failed" else None,
                outcome=status,
                source="api" if index % 9 else "web",
                nanosecond_timestamps=index % 3 == 0,
                created=created,
                started=started,
                ended=ended,
                script=writer.build(),
                script_speed=1.0,
            )
        )
    return jobs
