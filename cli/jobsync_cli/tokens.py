"""`jobsync token create|list|revoke`: API tokens (the admin scope's routes under /api/tokens)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobsync_cli.client import api_for
from jobsync_cli.errors import FIX_THE_COMMAND, CliError, reported

app = typer.Typer(help="API tokens: create (shown once), list, revoke. Needs a token with the admin scope.")

_DURATION = re.compile(r"(\d+)([mhdw])")
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ScopeName(StrEnum):
    read = "read"
    operate = "operate"
    admin = "admin"


def expiry(text: str, now: datetime | None = None) -> str:
    """`--expires` as the API takes it: `30d`, `12h`, `90m`, `2w` from now, or an ISO 8601 date or time (UTC
    unless it says otherwise)."""
    now = now or datetime.now(timezone.utc)
    duration = _DURATION.fullmatch(text.strip().lower())
    if duration:
        moment = now + timedelta(**{_UNIT[duration.group(2)]: int(duration.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CliError(
                f"--expires {text!r}: give a duration (30d, 12h, 90m, 2w) or an ISO 8601 date or time",
                FIX_THE_COMMAND,
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _note(text: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(Text(text))


def _print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2))


@app.command()
@reported
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the token is for (shown by `jobsync token list`).")],
    scope: Annotated[ScopeName, typer.Option(help="read < operate < admin; each includes the ones before it.")],
    expires: Annotated[
        str | None, typer.Option(help="When it stops working: 30d, 12h, 90m, 2w, or an ISO 8601 date or time.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's answer (the token included).")] = False,
) -> None:
    """Create a token and print it: the only time it is shown (only its sha256 digest is kept)."""
    body: dict[str, Any] = {"name": name, "scope": scope.value}
    if expires is not None:
        body["expires_at"] = expiry(expires)
    created = api_for(ctx).request("POST", "/api/tokens", body)
    if as_json:
        _print_json(created)
        return
    typer.echo(created["token"])  # alone on stdout: TOKEN=$(jobsync token create ...) takes just the token
    until = f"until {created['expires_at']}" if created.get("expires_at") else "with no expiry"
    _note(
        f"token {created['token_id']} ({created['name']!r}, {created['scope']} scope, {until}): shown this once, "
        f"store it now; `jobsync token revoke {created['token_id']}` revokes it"
    )


@app.command("list")
@reported
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's answer.")] = False,
) -> None:
    """List the tokens (never the tokens themselves): id, name, scope, created, last used, expiry."""
    tokens = api_for(ctx).request("GET", "/api/tokens")["tokens"]
    if as_json:
        _print_json(tokens)
        return
    if not tokens:
        _note("no tokens yet (the bootstrap tokens, ApiTokenHashes or JOBSYNC_API_TOKEN, are not listed)")
        return
    table = Table("ID", "NAME", "SCOPE", "CREATED", "LAST USED", "EXPIRES", box=None, header_style="bold")
    for token in tokens:
        table.add_row(
            token["token_id"],
            Text(token["name"]),
            token["scope"],
            token["created_at"],
            token.get("last_used_at") or "never",
            token.get("expires_at") or "never",
        )
    _out().print(table)


@app.command()
@reported
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id, as `jobsync token list` shows it.")],
) -> None:
    """Revoke a token: refused at once by the instance that revokes it, everywhere within 60 s."""
    revoked = api_for(ctx).request("DELETE", f"/api/tokens/{token_id}")["token"]
    _note(f"revoked token {revoked['token_id']} ({revoked['name']!r}, {revoked['scope']} scope)")
