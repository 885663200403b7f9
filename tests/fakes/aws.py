"""The environment each function gets in AWS (template.yaml's Globals), pointed at doubles instead.

One definition for the tests (tests/conftest.py) and the bench (bench/harness.py): moto's tables under
the template's logical names, a fake Replicate, an API token's digest and a WebSocket endpoint.
"""

from __future__ import annotations

import hashlib

REGION = "us-east-1"
TABLE_NAMES = {"JobsTable": "jobs", "ConnectionsTable": "connections", "StateTable": "state", "TokensTable": "tokens"}


def function_environment(
    *,
    api_token: str,
    replicate_token: str,
    replicate_base_url: str,
    management_url: str,
    metrics_namespace: str,
) -> dict[str, str]:
    """Every variable a function reads, for a deployment whose API answers `api_token` (as its bootstrap token)."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "JOBS_TABLE_NAME": TABLE_NAMES["JobsTable"],
        "CONNECTIONS_TABLE_NAME": TABLE_NAMES["ConnectionsTable"],
        "STATE_TABLE_NAME": TABLE_NAMES["StateTable"],
        "TOKENS_TABLE_NAME": TABLE_NAMES["TokensTable"],
        "JOBSYNC_API_TOKEN_HASHES": hashlib.sha256(api_token.encode()).hexdigest(),
        "REPLICATE_API_TOKEN": replicate_token,
        "REPLICATE_API_BASE_URL": replicate_base_url,
        "JOBSYNC_WEBSOCKET_URL": management_url.replace("https://", "wss://", 1),
        "JOBSYNC_WEBSOCKET_MANAGEMENT_URL": management_url,
        "POWERTOOLS_SERVICE_NAME": "jobsync",
        "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace,
        # No EMF blobs in a failure's captured output or the bench's table (nothing reads them).
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
