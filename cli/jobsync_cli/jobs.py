"""`jobsync jobs|show|cancel|metrics|sync`: the job routes of the API, one request (or one page walk) each."""

from __future__ import annotations

import json
import os
import time
from contextlib import suppress
from datetime import datetime, timezone
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.text import Text

from jobsync_cli import views
from jobsync_cli.client import Api, api_for
from jobsync_cli.errors import reported
from jobsync_cli.live import optional_socket

# The list is read in pages of this many jobs (the API allows up to 500; a smaller page shows something sooner
# and a --limit of a few hundred costs a few requests).
PAGE_SIZE = 100
# How long `sync` waits for the next `sync_progress` of a background import before it leaves it running.
SYNC_WAIT_SECONDS = 60.0


class StatusName(StrEnum):
    pending = "pending"
    uploading = "uploading"
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


JobIdArgument = Annotated[str, typer.Argument(metavar="ID", help="The job's id, as `jobsync jobs` shows it.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]


# Where the output is no terminal (a pipe, a file) and COLUMNS does not say, tables get this width: whole lines
# for grep rather than a made-up 80 columns.
PIPE_WIDTH = 200


def out(ctx: typer.Context | None = None) -> Console:
    """Standard output; tests make it a terminal through the context's obj["terminal"]."""
    terminal = bool(ctx.obj.get("terminal")) if ctx is not None and isinstance(ctx.obj, dict) else None
    console = Console(highlight=False, soft_wrap=True, force_terminal=terminal or None)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
    return console


def note(text: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(Text(text))


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def now_for(ctx: typer.Context) -> datetime:
    """The time running jobs are measured to (tests fix it through the context's obj["now"])."""
    fixed = ctx.obj.get("now") if isinstance(ctx.obj, dict) else None
    return fixed if isinstance(fixed, datetime) else datetime.now(timezone.utc)


def job_path(job_id: str, suffix: str = "") -> str:
    return f"/api/cloud/jobs/{quote(job_id, safe='')}{suffix}"


def read_jobs(api: Api, *, limit: int, status: str | None = None, provider: str | None = None) -> list[dict[str, Any]]:
    """Up to `limit` jobs, newest first, following the list's cursor page after page."""
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(jobs) < limit:
        params = {"limit": str(min(PAGE_SIZE, limit - len(jobs)))}
        if status:
            params["status"] = status
        if provider:
            params["provider"] = provider
        if cursor:
            params["cursor"] = cursor
        page = api.request("GET", "/api/cloud/jobs", params=params)
        jobs.extend(page["jobs"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return jobs[:limit]


def jobs(
    ctx: typer.Context,
    status: Annotated[StatusName | None, typer.Option(help="Only jobs in this status.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider's jobs (e.g. replicate).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many jobs, newest first (read page after page).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List jobs newest first: status, model, id, created, duration (so far), cost (so far)."""
    found = read_jobs(api_for(ctx), limit=limit, status=status.value if status else None, provider=provider)
    if as_json:
        print_json(found)
        return
    if not found:
        note(f"no {status.value} jobs" if status else "no jobs yet: `jobsync sync` imports the provider's")
        return
    console = out(ctx)
    console.print(views.jobs_table(found, now_for(ctx), console.width))


def show(ctx: typer.Context, job_id: JobIdArgument, as_json: JsonOption = False) -> None:
    """One job: its facts, cost and hardware price, and its status history."""
    job = api_for(ctx).request("GET", job_path(job_id))["job"]
    if as_json:
        print_json(job)
        return
    out().print(views.job_view(job, now_for(ctx)))


def cancel(ctx: typer.Context, job_id: JobIdArgument, as_json: JsonOption = False) -> None:
    """Ask the provider to cancel a job (sent once; an ended job is refused with 409)."""
    job = api_for(ctx).request("POST", job_path(job_id, "/cancel"))["job"]
    if as_json:
        print_json(job)
        return
    if job["status"] == "cancelled":
        note(f"cancelled job {job['job_id']}")
    elif job.get("is_terminal"):
        note(f"job {job['job_id']} ended before the cancel reached it: {job['status']}")
    else:
        note(f"the provider took the cancel; job {job['job_id']} is still {job['status']} until it stops")


def metrics(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Job counts by status and the total cost, over all jobs."""
    answer = api_for(ctx).request("GET", "/api/cloud/metrics")
    if as_json:
        print_json(answer)
        return
    out().print(views.metrics_table(answer))


def sync(
    ctx: typer.Context,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Follow a background history import while its progress keeps coming, up to this many seconds "
            "between two reports (0: do not follow).",
        ),
    ] = SYNC_WAIT_SECONDS,
    as_json: JsonOption = False,
) -> None:
    """Import the provider's new jobs and update known ones; follow a first import's progress."""
    api = api_for(ctx)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if wait <= 0 or as_json:
        with console.status("syncing with the provider…"):
            answer = api.request("POST", "/api/cloud/jobs/sync")
        _print_sync(answer, as_json)
        return
    # Listening before asking: a background import's first progress may come before the answer.
    with optional_socket(ctx, api) as messages:
        with console.status("syncing with the provider…"):
            answer = api.request("POST", "/api/cloud/jobs/sync")
        _print_sync(answer, as_json)
        if answer.get("history_complete", True) or messages is None:
            return
        imported = 0
        # Ctrl-C stops the following, not the import: it goes on in the background either way.
        with console.status("importing the history in the background…") as spinner, suppress(KeyboardInterrupt):
            waited_since = time.monotonic()
            while time.monotonic() - waited_since < wait and messages.listening:
                message = messages.next(timeout=min(1.0, wait))
                if not message or message.get("type") != "sync_progress":
                    continue
                waited_since = time.monotonic()
                imported = int(message.get("imported") or 0)
                spinner.update(f"importing the history in the background… {imported} jobs so far")
                if message.get("done"):
                    note(f"history imported: {imported} jobs")
                    return
    note(f"the import goes on in the background ({imported} jobs so far): `jobsync sync` again shows where it is")


def _print_sync(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(answer)
        return
    out().print(Text(f"{answer['message']} ({answer['synced']} new, {answer['updated']} updated)"))
    if not answer.get("history_complete", True):
        note("the provider's history is not all in yet")


def register(app: typer.Typer) -> None:
    for command in (jobs, show, cancel, metrics, sync):
        app.command(command.__name__)(reported(command))
