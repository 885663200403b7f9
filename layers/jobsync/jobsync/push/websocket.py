"""Posting to WebSocket clients through API Gateway's management API."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from jobsync.config import get_settings


class ConnectionGone(Exception):
    """The client behind this connection id has gone away (API Gateway answered 410)."""


class PushFailed(Exception):
    """The post failed for another reason; the connection may still be alive."""


class WebSocketPusher:
    def __init__(self, endpoint_url: str, pool_size: int) -> None:
        # One client shared by all broadcast threads; its pool must be as wide as the fan-out.
        self._client: Any = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint_url,
            config=Config(max_pool_connections=pool_size, retries={"mode": "standard", "max_attempts": 2}),
        )

    def post(self, connection_id: str, data: bytes) -> None:
        client = self._client
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=data)
        # GoneException subclasses ClientError: it must be caught first, or gone clients are never removed.
        except client.exceptions.GoneException as exc:
            raise ConnectionGone(connection_id) from exc
        except Exception as exc:  # noqa: BLE001 - any other failure only skips this client
            raise PushFailed(f"{connection_id}: {type(exc).__name__}") from exc


@lru_cache(maxsize=1)
def pusher() -> WebSocketPusher:
    settings = get_settings()
    if not settings.websocket_management_url:
        raise RuntimeError("JOBSYNC_WEBSOCKET_MANAGEMENT_URL is not set")
    return WebSocketPusher(settings.websocket_management_url, settings.broadcast_workers)
