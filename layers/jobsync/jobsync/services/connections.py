"""WebSocket clients arriving and leaving: token and scope check, and the per-IP cap."""

from __future__ import annotations

from jobsync import wiring
from jobsync.auth import Scope
from jobsync.config import get_settings
from jobsync.domain.errors import Forbidden, JobsyncError, Unauthorized
from jobsync.services.tokens import authority


class TooManyConnections(JobsyncError):
    code = "too_many_connections"
    http_status = 429


def connect(connection_id: str, source_ip: str, token: str | None, needed: Scope) -> None:
    """Admit a client whose `token` has the `needed` scope (the route table's WEBSOCKET_SCOPE) under its IP's cap."""
    principal = authority().authenticate(token)
    if principal is None:
        raise Unauthorized("a valid ?token= is required")
    if not principal.scope.allows(needed):
        raise Forbidden(f"live updates need a token with the '{needed}' scope")
    limit = get_settings().max_connections_per_ip
    if not wiring.connection_store().open(connection_id, source_ip, limit):
        raise TooManyConnections(f"at most {limit} connections per source IP")


def disconnect(connection_id: str) -> None:
    wiring.connection_store().close(connection_id)
