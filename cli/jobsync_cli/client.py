"""The HTTP side of the command: where the API is, its token, and its answers turned into CliErrors."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import typer

from jobsync_cli.errors import FIX_THE_COMMAND, CliError

DEFAULT_URL = "http://127.0.0.1:8001"
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Api:
    url: str
    token: str
    transport: httpx.BaseTransport | None = None  # tests hand in an httpx.MockTransport

    @classmethod
    def from_environment(cls, env: Mapping[str, str], transport: httpx.BaseTransport | None = None) -> Api:
        url = (env.get("JOBSYNC_URL") or DEFAULT_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise CliError(f"JOBSYNC_URL must start with http:// or https:// (it is {url!r})", FIX_THE_COMMAND)
        token = (env.get("JOBSYNC_TOKEN") or "").strip()
        if not token:
            raise CliError(
                "JOBSYNC_TOKEN is not set: export JOBSYNC_TOKEN=<an API token> (make run prints one)", FIX_THE_COMMAND
            )
        return cls(url, token, transport)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON of a 2xx answer; any other outcome raises a CliError naming what to fix."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            with httpx.Client(transport=self.transport, timeout=TIMEOUT_SECONDS, headers=headers) as client:
                answer = client.request(method, f"{self.url}{path}", json=body)
        except httpx.TimeoutException as exc:
            raise CliError(f"{self.url} did not answer {method} {path} within {TIMEOUT_SECONDS:.0f} s") from exc
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach {self.url}: is make run up? (JOBSYNC_URL says where the API is)") from exc
        return _payload(answer)


def _payload(answer: httpx.Response) -> Any:
    try:
        payload = answer.json() if answer.content else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
        if answer.is_success:
            raise CliError(f"{answer.status_code}: the API answered something that is not JSON") from None
    if answer.is_success:
        return payload
    status = answer.status_code
    message = payload.get("message") if isinstance(payload, dict) else None
    if status == 401:
        raise CliError("401: the API refused the token: check JOBSYNC_TOKEN")
    if status == 403:
        raise CliError(f"403: {message or 'the token is not allowed to do this'}")
    raise CliError(f"{status}: {message or answer.reason_phrase or 'the API refused the request'}")


def api_for(ctx: typer.Context) -> Api:
    """The API of this run, from the environment (tests put an httpx transport in the context's obj)."""
    transport = ctx.obj.get("transport") if isinstance(ctx.obj, dict) else None
    return Api.from_environment(os.environ, transport)
