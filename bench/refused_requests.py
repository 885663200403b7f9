"""What a refused request costs: the measurement behind the README's "Cheap to refuse".

Runs the real `metrics` handler in this process, as Lambda would, with a request it must refuse
(no token; a string that is not a token; a well-formed token nobody issued, its store read stubbed
out: in AWS that is one DynamoDB GetItem per token id per minute per instance), and times each
refusal warm; then times a cold start (importing the handler) in fresh interpreters. Prints the
cost per million refused requests from the prices below.

    .venv/bin/python -m bench.refused_requests
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# us-east-1 list prices (aws.amazon.com/api-gateway/pricing, aws.amazon.com/lambda/pricing).
HTTP_API_PER_MILLION = 1.00  # the first 300 million requests a month
LAMBDA_REQUESTS_PER_MILLION = 0.20
LAMBDA_ARM_PER_GB_SECOND = 0.0000133334
MEMORY_GB = 512 / 1024  # template.yaml's Globals
BILLED_MS_STEP = 1  # Lambda bills duration in 1 ms steps

WARM_CALLS = 2000
COLD_STARTS = 3


def _environment() -> None:
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "JOBSYNC_API_TOKEN_HASHES": hashlib.sha256(b"the bootstrap token").hexdigest(),
            "POWERTOOLS_SERVICE_NAME": "jobsync",
            "POWERTOOLS_METRICS_NAMESPACE": "jobsync",
        }
    )
    warnings.filterwarnings("ignore")


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def warm_refusals() -> dict[str, tuple[float, float, int]]:
    """Refusal kind -> (median µs, p99 µs, status)."""
    from jobsync.auth import new_token
    from jobsync.services import tokens
    from local.lambda_runtime import LambdaContext, load_handler

    handler = load_handler("functions/metrics/")
    tokens.authority().store.get = lambda token_id: None  # type: ignore[method-assign]
    sample = json.loads((ROOT / "events" / "metrics.json").read_text())
    kinds = {"no token": None, "not a token": "Bearer nope", "unknown token": f"Bearer {new_token()[1]}"}
    results = {}
    for kind, authorization in kinds.items():
        event = copy.deepcopy(sample)
        event["headers"].pop("authorization")
        if authorization:
            event["headers"]["authorization"] = authorization
        context = LambdaContext("metrics")
        timings, status = [], 0
        with contextlib.redirect_stdout(io.StringIO()):  # Powertools' log lines, as CloudWatch would get them
            for _ in range(WARM_CALLS):
                copied = copy.deepcopy(event)
                started = time.perf_counter()
                status = handler(copied, context)["statusCode"]
                timings.append((time.perf_counter() - started) * 1e6)
        results[kind] = (statistics.median(timings), _percentile(timings, 0.99), status)
    return results


def cold_start_ms() -> float:
    """Median time to import the metrics handler (and the layer) in a fresh interpreter."""
    script = (
        "import time; started = time.perf_counter(); "
        "from local.lambda_runtime import load_handler; load_handler('functions/metrics/'); "
        "print((time.perf_counter() - started) * 1000)"
    )
    runs = [
        float(
            subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        )
        for _ in range(COLD_STARTS)
    ]
    return statistics.median(runs)


def main() -> None:
    _environment()
    sys.path[:0] = [str(ROOT / "layers" / "jobsync"), str(ROOT)]
    for kind, (median, p99, status) in warm_refusals().items():
        print(f"refused, {kind:14} answer {status}  warm: median {median:6.0f} µs, p99 {p99:7.0f} µs")
    print(f"cold start (import of the handler and the layer): median {cold_start_ms():.0f} ms")
    billed_seconds = BILLED_MS_STEP / 1000  # every warm refusal above is under 1 ms
    duration = 1e6 * billed_seconds * MEMORY_GB * LAMBDA_ARM_PER_GB_SECOND
    lambda_per_million = LAMBDA_REQUESTS_PER_MILLION + duration
    print("per million refused requests:")
    print(
        f"  check in the function (this design): HTTP API {HTTP_API_PER_MILLION:.2f} + one invocation "
        f"{lambda_per_million:.4f} (requests {LAMBDA_REQUESTS_PER_MILLION:.2f} + 1 ms x 0.5 GB {duration:.4f})"
        f" = {HTTP_API_PER_MILLION + lambda_per_million:.4f} $"
    )
    print(f"  always-allow authorizer + function (before): {HTTP_API_PER_MILLION + 2 * lambda_per_million:.4f} $")


if __name__ == "__main__":
    main()
