"""The HTTP side of the command: where the API is, its token, and its answers turned into CliErrors.

Where the API is and its token come from JOBSYNC_URL and JOBSYNC_TOKEN, else
from the config file ($XDG_CONFIG_HOME/jobsync/config.toml, by default
~/.config/jobsync/config.toml), which may hold `url = "..."` and `token = "..."`;
a variable wins over the file.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import typer

from jobsync_cli.errors import FIX_THE_COMMAND, CliError

DEFAULT_URL = "http://127.0.0.1:8001"
TIMEOUT_SECONDS = 30.0


def config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "jobsync" / "config.toml"


def read_config(path: Path) -> dict[str, str]:
    """The config file's `url` and `token` ({} when there is no file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", FIX_THE_COMMAND) from None
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path} is not valid TOML: {exc}", FIX_THE_COMMAND) from None
    known: dict[str, str] = {}
    for key in ("url", "token"):
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            raise CliError(f'{path}: {key} must be a string, e.g. {key} = "..."', FIX_THE_COMMAND)
        if value:
            known[key] = value
    return known


@dataclass(frozen=True)
class Api:
    url: str
    token: str
    transport: httpx.BaseTransport | None = None  # tests hand in an httpx.MockTransport

    @classmethod
    def from_environment(cls, env: Mapping[str, str], transport: httpx.BaseTransport | None = None) -> Api:
        file = config_path(env)
        # Read only when a variable is missing: a broken file does not stand in the way of the variables.
        config = read_config(file) if not (env.get("JOBSYNC_URL") and env.get("JOBSYNC_TOKEN")) else {}
        url = (env.get("JOBSYNC_URL") or config.get("url") or DEFAULT_URL).strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            where = "JOBSYNC_URL" if env.get("JOBSYNC_URL") else f"url in {file}"
            raise CliError(f"{where} must start with http:// or https:// (it is {url!r})", FIX_THE_COMMAND)
        token = (env.get("JOBSYNC_TOKEN") or config.get("token") or "").strip()
        if not token:
            raise CliError(
                "JOBSYNC_TOKEN is not set: export JOBSYNC_TOKEN=<an API token> (make run prints one), "
                f'or put token = "..." in {file}',
                FIX_THE_COMMAND,
            )
        return cls(url, token, transport)

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        """The JSON of a 2xx answer; any other outcome raises a CliError naming what to fix."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if params:
            path = f"{path}?{urlencode(params)}"
        try:
            with httpx.Client(transport=self.transport, timeout=TIMEOUT_SECONDS, headers=headers) as client:
                answer = client.request(method, f"{self.url}{path}", json=body)
        except httpx.TimeoutException as exc:
            raise CliError(f"{self.url} did not answer {method} {path} within {TIMEOUT_SECONDS:.0f} s") from exc
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach {self.url}: is make run up? (JOBSYNC_URL says where the API is)") from exc
        return _payload(answer)

    def websocket_url(self) -> str:
        """The API's WebSocket with this token: the one /api/cloud/config names, else this URL's `/live`."""
        announced = self.request("GET", "/api/cloud/config").get("websocket_url")
        if not isinstance(announced, str) or not announced.startswith(("ws://", "wss://")):
            announced = "ws" + self.url.removeprefix("http") + "/live"
        separator = "&" if "?" in announced else "?"
        return f"{announced}{separator}{urlencode({'token': self.token})}"


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
