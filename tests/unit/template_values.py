"""What the template tests give `local.template.resolve` for the parameters and resources a deployment names."""

from __future__ import annotations

# The template's required parameters.
PARAMS = {
    "ApiTokenHashes": "0" * 64,
    "ReplicateApiTokenSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:replicate-AbCdEf",
}
# The tables and the WebSocket API every function's environment names.
REFS = {
    "JobsTable": "jobs",
    "ConnectionsTable": "connections",
    "StateTable": "state",
    "TokensTable": "tokens",
    "WebSocketApi": "abc",
    "WebSocketStage": "live",
}
