"""WebSocket clients arriving and leaving: token check and the per-IP cap."""

from __future__ import annotations

from jobsync import wiring
from jobsync.auth import token_is_valid
from jobsync.config import get_settings
from jobsync.domain.errors import JobsyncError, Unauthorized


class TooManyConnections(JobsyncError):
    code = "too_many_connections"
    http_status = 429


def connect(connection_id: str, source_ip: str, token: str | None) -> None:
    settings = get_settings()
    if not token_is_valid(token, settings.api_token_hashes):
        raise Unauthorized("a valid ?token= is required")
    limit = settings.max_connections_per_ip
    if not wiring.connection_store().open(connection_id, source_ip, limit):
        raise TooManyConnections(f"at most {limit} connections per source IP")


def disconnect(connection_id: str) -> None:
    wiring.connection_store().close(connection_id)
