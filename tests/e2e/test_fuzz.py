"""Schemathesis against the local stack, every check on, through its Python API (what `st run --checks all` runs).

The document under test is the stack's own `GET /api/openapi.json`. Webhook requests whose generated
headers are well formed are signed with the stack's secret (a fresh timestamp and the signature over
the exact body bytes sent), so the webhook's ids and bodies are fuzzed past the signature check.

Two rejections are ones no JSON Schema can express, and only they are excused (never a status as a
whole): a `cursor` that matches the parameter's schema but is not one the list handed out, and a
token `expires_at` in the past. Each is excused only with its own 400 answer's message.

A gate of its own (`make fuzz`, which .ci/run runs after `make test`): at least 2,000 cases.
JOBSYNC_FUZZ_EXAMPLES sets the budget; JOBSYNC_FUZZ_REPORT=<file> writes the run's figures there (cases,
checks, statuses per operation, what was excused).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NOT_SET
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine import Status, events, from_schema

from jobsync.domain.identifiers import is_webhook_id
from jobsync.domain.webhook_signature import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from tests.e2e.conftest import SECRET
from tests.stack_process import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.gate]

# Examples per operation and phase: 220 made 3,623 cases in 5 minutes with no example database; the gate
# asks for 2,000.
MAX_EXAMPLES = int(os.environ.get("JOBSYNC_FUZZ_EXAMPLES", "220"))
# Every example of the budget yields at least eight cases over the three phases and all operations: fewer
# means the run was cut short. The gate asks for 2,000 at least.
MIN_CASES = max(8 * MAX_EXAMPLES, int(os.environ.get("JOBSYNC_FUZZ_MIN_CASES", "2000")))
REQUEST_SECONDS = 60
SEED = 20261130
WEBHOOK = "POST /api/webhooks/replicate"

# (operation, message start) of the 400s the schema cannot express; see the module's docstring.
INEXPRESSIBLE = {
    ("GET /api/cloud/jobs", "cursor is not one this list handed out"),
    ("POST /api/tokens", "expires_at "),
}


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory) -> Iterator[LocalStack]:
    """A stack of its own (the fuzzer creates jobs and tokens and flips the polling setting), polling at the
    default interval: the requests under test, not the poller, get the machine."""
    stack = LocalStack(
        tmp_path_factory.mktemp("fuzz-stack"),
        token="fuzz-token",
        webhook_secret=SECRET,
        # Every case comes from one address, faster than the webhook path's per-IP limit allows (that limit
        # is tested in tests/unit/test_gateway_rate_limit.py); the cases under test are the handlers'.
        JOBSYNC_WEBHOOK_RATE_LIMIT_PER_IP="0",
    )
    stack.start()
    yield stack
    stack.stop()


@dataclass
class Outcome:
    cases: int = 0
    checks: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    excused: Counter[str] = field(default_factory=Counter)
    stop_reason: str = ""


def _signable(case: Any) -> bool:
    """Whether the case's webhook headers are all there and meant to be valid: a case whose negation is in
    its headers (or anywhere but the body) stays unsigned, so that what it negated is still what is refused."""
    if case.body is NOT_SET:
        return False
    if case.meta is not None and case.meta.generation.mode.is_negative:
        data = case.meta.phase.data
        negated = {data.parameter_location} | {mutation.parameter_location for mutation in data.mutations}
        if negated != {ParameterLocation.BODY}:
            return False
    headers = case.headers or {}
    timestamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    return (
        is_webhook_id(headers.get(ID_HEADER))
        and isinstance(timestamp, str)
        and timestamp.isascii()
        and timestamp.isdigit()
        and isinstance(signature, str)
        and signature != ""
    )


def _schema(stack: LocalStack, outcome: Outcome) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": stack.headers(),
            # No example database: a fresh clone (CI) and a repeated run make the same cases from the seed.
            # With one, a fresh clone made fewer cases than a repeated run (1,987 against 2,700 at 170 examples).
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            # A first sync imports the simulator's history: up to the sync function's 29 s on a loaded machine.
            "request-timeout": REQUEST_SECONDS,
            "checks": {"enabled": True},  # every check: `--checks all`
        }
    )
    schema = schemathesis.openapi.from_url(f"{stack.url}/api/openapi.json", config=config)
    schema.config.update(base_url=stack.url)

    @schema.hook
    def map_case(context: Any, case: Any) -> Any:
        if f"{case.method} {case.path}" != WEBHOOK or not _signable(case):
            return case
        try:
            # The bytes requests will send for this body (`json=`), which the signature must cover.
            raw = json.dumps(case.body, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError):
            return case
        now = str(int(time.time()))
        case.headers = {
            **case.headers,
            TIMESTAMP_HEADER: now,
            SIGNATURE_HEADER: sign_webhook(stack.webhook_secret, case.headers[ID_HEADER], now, raw),
        }
        return case

    @schema.hook
    def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
        if response.status_code != 400 or "Schema-valid request rejected" not in failure.title:
            return True
        message = str((response.json() or {}).get("message", ""))
        for operation, start in INEXPRESSIBLE:
            if case.operation.label == operation and message.startswith(start):
                outcome.excused[operation] += 1
                return False
        return True

    return schema


def _fuzz(stack: LocalStack) -> Outcome:
    outcome = Outcome()
    for event in from_schema(_schema(stack, outcome)).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            outcome.cases += len(recorder.cases)
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    outcome.statuses[(recorder.label, interaction.response.status_code)] += 1
            for case_id, nodes in recorder.checks.items():
                for node in nodes:
                    outcome.checks[node.name] += 1
                    if node.status == Status.FAILURE and node.failure_info is not None:
                        case = recorder.cases[case_id].value
                        failure = node.failure_info.failure
                        outcome.failures.append(
                            f"{node.name} on {recorder.label}: {failure.title}\n{failure.message}\n"
                            f"{node.failure_info.code_sample or case.as_curl_command()}"
                        )
        elif isinstance(event, events.NonFatalError):
            outcome.errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.EngineFinished):
            outcome.stop_reason = str(event.stop_reason)
    return outcome


def test_schemathesis_finds_nothing_with_every_check_on(fuzz_stack):
    started = time.monotonic()
    outcome = _fuzz(fuzz_stack)
    if os.environ.get("JOBSYNC_FUZZ_REPORT"):
        Path(os.environ["JOBSYNC_FUZZ_REPORT"]).write_text(
            f"{time.monotonic() - started:.1f} s\n{outcome.cases} cases\n{dict(outcome.checks)}\n"
            f"{sorted(outcome.statuses.items())}\nexcused {dict(outcome.excused)}\n"
            + "\n\n".join(outcome.failures + outcome.errors)
        )

    assert outcome.stop_reason == "completed", outcome
    assert not outcome.errors, "\n".join(outcome.errors)
    assert not outcome.failures, f"{len(outcome.failures)} failures:\n\n" + "\n\n".join(outcome.failures[:20])
    assert outcome.cases >= MIN_CASES, outcome.cases
    # Every check ran, and the webhook was fuzzed past its signature (answers other than 401).
    assert {"unsupported_method", "negative_data_rejection", "positive_data_acceptance", "ignored_auth"} <= set(
        outcome.checks
    )
    webhook_statuses = {status for (label, status) in outcome.statuses if label == WEBHOOK}
    assert {200, 400, 401} <= webhook_statuses, webhook_statuses
