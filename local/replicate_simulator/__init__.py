"""A Replicate API simulator for the local stack: scripted trainings, history, webhooks.

`make run` works without internet, so jobsync's Replicate client talks to this
instead. It answers the way the real API does (see
shared/reference/replicate-api-facts.md): `Bearer`/`Token` auth, problem+json
errors, `{next, previous, results}` pages of 100 newest first, training objects
whose logs grow the way SimpleTuner and tqdm write them, and Standard Webhooks.

Every answer is a pure function of (anchor, speed, seed, clock reading) plus
the cancellations made through the API: the same clock reading gives the same
answer, and a restart with the same anchor continues the same story instead of
replaying it.

Provider faults — 429 with and without `Retry-After`, 5xx, timeouts, dropped
connections, JSON bodies cut short — are injected one by one
(`inject_faults`) or drawn at a seeded rate (`FaultPlan`, or in the local
stack `JOBSYNC_SIMULATOR_FAULT_RATE=0.2`, `JOBSYNC_SIMULATOR_FAULTS=429,503,truncated`).

    scenarios.py    the scripted trainings and the history's models, as data
    log_scripts.py  logs as a function of time (FLUX/tqdm and SimpleTuner styles)
    story.py        scenarios and history turned into jobs, fixed at construction
    state.py        `SimulatedReplicate`: what each job shows at a moment, cancel,
                    faults (`FaultPlan`) and request counts, due webhooks; no HTTP
    listing.py      pages, cursors and time filters
    seeded.py       ids, tokens and timestamp digits hashed from the seed
    webhooks.py     the webhook sender and its loop
    app.py          `create_app`: the HTTP API under `/v1`
    cli.py          `python -m local.replicate_simulator --port 8002 --token r8_local`
"""

from local.replicate_simulator.app import THROTTLE_DETAIL, create_app
from local.replicate_simulator.cli import main
from local.replicate_simulator.listing import PAGE_SIZE, BadRequest
from local.replicate_simulator.state import (
    DEFAULT_BASE_URL,
    DEFAULT_SEED,
    DEFAULT_TOKEN,
    FAULT_KINDS,
    HISTORY_SIZE,
    LOGS_WEBHOOK_EVERY,
    RETENTION_SECONDS,
    TERMINAL_STATUSES,
    Fault,
    FaultPlan,
    SimulatedReplicate,
    WebhookEvent,
)
from local.replicate_simulator.webhooks import WEBHOOK_RETRY_DELAYS, deliver_due, deliver_webhook, webhook_loop

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_SEED",
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "HISTORY_SIZE",
    "LOGS_WEBHOOK_EVERY",
    "PAGE_SIZE",
    "RETENTION_SECONDS",
    "TERMINAL_STATUSES",
    "THROTTLE_DETAIL",
    "WEBHOOK_RETRY_DELAYS",
    "BadRequest",
    "Fault",
    "FaultPlan",
    "SimulatedReplicate",
    "WebhookEvent",
    "create_app",
    "deliver_due",
    "deliver_webhook",
    "main",
    "webhook_loop",
]
