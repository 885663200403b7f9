"""Posting to WebSocket clients through API Gateway's management API.

A broadcast posts to every connection, so the cost of one post is what bounds a fan-out: boto3's
client spends about a millisecond of CPU on each (parameter validation, a dozen event hooks,
endpoint resolution, signing), and with the GIL that CPU, not the network, set how many posts were
in flight. A post is one signed POST of bytes, so the pusher signs it itself with botocore's SigV4
signer (a fifth of that CPU) and sends it over one pooled HTTP session shared by every thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from jobsync.config import get_settings


class ConnectionGone(Exception):
    """The client behind this connection id has gone away (API Gateway answered 410)."""


class PushFailed(Exception):
    """The post failed for another reason; the connection may still be alive."""


# Answers worth one more try: throttled, or API Gateway's own trouble.
_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
_ATTEMPTS = 2

Send = Callable[[Any], Any]  # a prepared botocore request -> an answer with .status_code


def http_send(pool_size: int) -> Send:
    """One pooled HTTP session for every broadcast thread, as wide as the fan-out: no thread waits for a socket."""
    from botocore.httpsession import URLLib3Session

    send: Send = URLLib3Session(max_pool_connections=pool_size, timeout=10).send
    return send


class WebSocketPusher:
    def __init__(self, endpoint_url: str, pool_size: int) -> None:
        import boto3
        from botocore.auth import SigV4Auth

        session = boto3.session.Session()
        self._endpoint = endpoint_url.rstrip("/")
        self._credentials = session.get_credentials()
        self._region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
        self._signer_class = SigV4Auth
        self._send = http_send(pool_size)

    def post(self, connection_id: str, data: bytes) -> None:
        request = self._signed(connection_id, data)  # valid for minutes: a retry sends it again
        for attempt in range(_ATTEMPTS):
            try:
                status = self._send(request).status_code
            except Exception as exc:  # noqa: BLE001 - a connection reset, a timeout: only this client is skipped
                if attempt + 1 < _ATTEMPTS:
                    continue
                raise PushFailed(f"{connection_id}: {type(exc).__name__}") from exc
            if status == 410:
                raise ConnectionGone(connection_id)
            if status < 300:
                return
            if status not in _RETRIED_STATUSES or attempt + 1 == _ATTEMPTS:
                raise PushFailed(f"{connection_id}: API Gateway answered {status}")

    def _signed(self, connection_id: str, data: bytes) -> Any:
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(
            method="POST",
            url=f"{self._endpoint}/@connections/{quote(connection_id, safe='')}",
            data=data,
            headers={"Content-Type": "application/json"},
        )
        if self._credentials is None:
            raise PushFailed("no AWS credentials to sign the post with")
        # Frozen per post: Lambda's role credentials are refreshed under us.
        self._signer_class(self._credentials.get_frozen_credentials(), "execute-api", self._region).add_auth(request)
        return request.prepare()


@lru_cache(maxsize=1)
def pusher() -> WebSocketPusher:
    settings = get_settings()
    if not settings.websocket_management_url:
        raise RuntimeError("JOBSYNC_WEBSOCKET_MANAGEMENT_URL is not set")
    return WebSocketPusher(settings.websocket_management_url, settings.broadcast_workers)
