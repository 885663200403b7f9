"""Posting to WebSocket clients through API Gateway's management API.

A broadcast posts to every connection, so the cost of one post is what bounds a fan-out: boto3's
client spends about a millisecond of CPU on each (parameter validation, a dozen event hooks,
endpoint resolution, signing), and with the GIL that CPU, not the network, set how many posts were
in flight. A post is one signed POST of bytes, so the pusher signs it itself (PostSigner: a tenth of
that CPU) and sends it over one pooled HTTP session shared by every thread.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from hashlib import sha256
from typing import Any
from urllib.parse import quote, urlsplit

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


class PostSigner:
    """AWS Signature Version 4 for the one request a pusher makes: a JSON POST to an execute-api URL.

    What botocore's SigV4Auth computes for it (tests/unit/test_websocket_pusher.py compares the two),
    without what a general signer pays on every request: parsing the URL and the headers again, four
    HMACs to derive the day's key (derived once a day here), building a request object to prepare.
    """

    def __init__(self, credentials: Any, region: str, service: str = "execute-api") -> None:
        self._credentials = credentials
        self._region = region
        self._service = service
        self._keys: dict[tuple[str, str], bytes] = {}

    def headers(self, host: str, path: str, body: bytes, now: datetime) -> dict[str, str]:
        if self._credentials is None:
            raise PushFailed("no AWS credentials to sign the post with")
        # Frozen per post: Lambda's role credentials are refreshed under us.
        credentials = self._credentials.get_frozen_credentials()
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        scope = f"{amz_date[:8]}/{self._region}/{self._service}/aws4_request"
        signed = [("content-type", "application/json"), ("host", host), ("x-amz-date", amz_date)]
        if credentials.token:
            signed.append(("x-amz-security-token", credentials.token))
        names = ";".join(name for name, _ in signed)
        canonical = "\n".join(
            (
                "POST",
                quote(path, safe="/~"),  # the path as sent, percent-encoded once more, as SigV4 wants
                "",
                "".join(f"{name}:{value}\n" for name, value in signed),
                names,
                sha256(body).hexdigest(),
            )
        )
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key(credentials.secret_key, amz_date[:8]), to_sign.encode(), sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Amz-Date": amz_date,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}",
        }
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        return headers

    def _key(self, secret: str, day: str) -> bytes:
        key = self._keys.get((secret, day))
        if key is None:
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.new(key, part.encode(), sha256).digest()
            self._keys = {(secret, day): key}  # one day's key for the current credentials
        return key


class WebSocketPusher:
    def __init__(self, endpoint_url: str, pool_size: int) -> None:
        import boto3

        session = boto3.session.Session()
        endpoint = urlsplit(endpoint_url.rstrip("/"))
        self._origin = f"{endpoint.scheme}://{endpoint.netloc}"
        self._host = endpoint.netloc
        self._stage_path = endpoint.path
        region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
        self._signer = PostSigner(session.get_credentials(), region)
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
        from botocore.awsrequest import AWSPreparedRequest, HeadersDict

        path = f"{self._stage_path}/@connections/{quote(connection_id, safe='')}"
        headers = self._signer.headers(self._host, path, data, datetime.now(timezone.utc))
        # HeadersDict, as botocore's own prepared requests carry (its stubs say HTTPHeaders, which urllib3
        # cannot send: it has no copy()).
        signed = HeadersDict(headers)
        return AWSPreparedRequest("POST", self._origin + path, signed, data, stream_output=False)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def pusher() -> WebSocketPusher:
    settings = get_settings()
    if not settings.websocket_management_url:
        raise RuntimeError("JOBSYNC_WEBSOCKET_MANAGEMENT_URL is not set")
    return WebSocketPusher(settings.websocket_management_url, settings.broadcast_workers)
