"""`jobsync logs [--follow]` and `jobsync watch`: what the API's WebSocket pushes, shown as it comes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from jobsync_cli import views
from jobsync_cli.client import Api, api_for
from jobsync_cli.errors import CliError, reported
from jobsync_cli.jobs import JobIdArgument, job_path, note, now_for, out, read_jobs
from jobsync_cli.live import RECONNECTED, Messages, live_socket

TERMINAL = ("completed", "failed", "cancelled")
# API Gateway closes a WebSocket idle for 10 minutes: a quiet follower pings well before.
PING_EVERY_SECONDS = 300.0
# Stage and progress of running jobs are read this often (the API shares one provider read per job per 5 s).
PROGRESS_EVERY_SECONDS = 5.0
# After a reconnection `logs --follow` reads this many of the newest lines (the logs route's most) to print
# what came while the socket was away; it remembers as many printed lines to know where it was.
GAP_TAIL = 2000
# A read of that gap that failed (the API answered 5xx, or could not be reached) is tried again this much later.
GAP_RETRY_SECONDS = 5.0


def _new_lines(shown: list[str], pushed: list[str]) -> list[str]:
    """`pushed` without the lines it repeats from the end of what was already `shown` (the follow began before
    the tail was read, so the first lines pushed may be the tail's last)."""
    for overlap in range(min(len(shown), len(pushed)), 0, -1):
        if shown[-overlap:] == pushed[:overlap]:
            return pushed[overlap:]
    return pushed


def _unseen(shown: list[str], tail: list[str]) -> tuple[list[str], bool]:
    """The lines of `tail` (the log's newest lines) after the last line of `shown` (the newest printed), and
    whether `tail` reaches back to that line at all (if not, some lines in between were never read).

    Where `shown` ends in `tail` is the last place at which all of `shown` that can overlap matches: every
    line of `tail` up to there when `tail` begins inside `shown`, else all of `shown`."""
    if not shown:
        return tail, True
    for end in range(len(tail), 0, -1):
        overlap = min(end, len(shown))
        if tail[end - overlap : end] == shown[-overlap:]:
            return tail[end:], True
    return tail, False


def logs(
    ctx: typer.Context,
    job_id: JobIdArgument,
    tail: Annotated[int, typer.Option(min=1, max=2000, help="How many of the newest lines to print first.")] = 200,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Then print new lines as they come, until the job ends or Ctrl-C.")
    ] = False,
) -> None:
    """Print a job's log lines, newest last (kept by jobsync after the provider deletes them)."""
    api = api_for(ctx)
    if not follow:
        _print_lines(_tail(api, job_id, tail))
        return
    job = api.request("GET", job_path(job_id))["job"]
    if job["status"] in TERMINAL:
        _print_lines(_tail(api, job_id, tail))
        note(f"job {job_id} has ended ({job['status']}): no more lines will come")
        return
    with live_socket(ctx, api) as messages:
        # Following before reading the tail: no line falls between the two (and the same after a reconnection,
        # which sends the kept follow again before the gap is read).
        messages.send({"action": "follow", "job_id": job_id}, keep=True)
        shown = _tail(api, job_id, tail)
        _print_lines(shown)
        try:
            _follow(api, messages, job_id, shown)
        except KeyboardInterrupt:
            return


def _tail(api: Api, job_id: str, tail: int) -> list[str]:
    answer = api.request("GET", job_path(job_id, "/logs"), params={"tail": str(tail)})
    lines = answer.get("lines") or []
    return [str(line) for line in lines]


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


def _follow(api: Api, messages: Messages, job_id: str, shown: list[str]) -> None:
    recent = shown[-GAP_TAIL:]
    gap_due: float | None = None  # when to read the lines a reconnection may have missed (None: no gap)
    quiet_since = time.monotonic()
    while messages.listening:
        if gap_due is not None and messages.clock() >= gap_due:
            try:
                status = _fill_the_gap(api, job_id, recent)
            except CliError as exc:
                note(f"could not read the lines that came while the connection was down ({exc}); trying again")
                gap_due = messages.clock() + GAP_RETRY_SECONDS
            else:
                gap_due = None
                if status in TERMINAL:
                    note(f"job {job_id} ended: {status}")
                    return
        message = messages.next(timeout=1.0)
        if message is None:
            if time.monotonic() - quiet_since > PING_EVERY_SECONDS:
                messages.send({"action": "ping"})
                quiet_since = time.monotonic()
            continue
        quiet_since = time.monotonic()
        if message.get("type") == RECONNECTED:
            gap_due = messages.clock()
            continue
        if message.get("type") == "error" and message.get("error") == "unknown_connection":
            messages.drop("the API no longer knows this connection")
            continue
        if message.get("type") == "error":  # the follow was refused (too many follows, an unknown job)
            raise CliError(f"the WebSocket refused to follow {job_id}: {message.get('message') or message}")
        if message.get("job_id") != job_id:
            continue
        if message.get("type") == "job_log_lines" and gap_due is None:
            fresh = _new_lines(recent, [str(line) for line in message.get("lines") or []])
            _print_lines(fresh)
            recent[:] = (recent + fresh)[-GAP_TAIL:]
        # While a gap waits to be read, pushed lines are left to that read: a pushed line is kept before it is
        # pushed, so the read has it, and printed now it would hide where the gap begins.
        elif message.get("type") == "job_status_changed" and message.get("status") in TERMINAL:
            if gap_due is not None:
                try:
                    _fill_the_gap(api, job_id, recent)
                except CliError as exc:
                    note(f"could not read the lines that came while the connection was down ({exc})")
            note(f"job {job_id} ended: {message['status']}")
            return


def _fill_the_gap(api: Api, job_id: str, recent: list[str]) -> str:
    """After a reconnection: print the lines that came while the socket was away (nothing was pushed then) and
    add them to `recent`; the job's status (read first: lines read after an end are its last)."""
    status = str(api.request("GET", job_path(job_id))["job"]["status"])
    fresh, reached = _unseen(recent, _tail(api, job_id, GAP_TAIL))
    if not reached:
        note(f"more than {GAP_TAIL} lines came while the connection was down: the older ones are not shown")
    _print_lines(fresh)
    recent[:] = (recent + fresh)[-GAP_TAIL:]
    return status


class _Board:
    """The jobs `watch` shows, newest first, kept up to date from the WebSocket's messages."""

    def __init__(self, api: Api, jobs: list[dict[str, Any]], limit: int) -> None:
        self.api = api
        self.limit = limit
        self.jobs = {job["job_id"]: job for job in jobs}
        self.progress: dict[str, dict[str, Any]] = {}
        self.progress_read: dict[str, float] = {}
        self.messages = 0

    def apply(self, message: dict[str, Any]) -> tuple[str | None, dict[str, Any]] | None:
        """Take one message: (the status before, the job now) when it told of a change the board did not show
        yet, else None (a change the list read after it already showed is not told twice)."""
        if message.get("type") != "job_status_changed" or not isinstance(message.get("job_id"), str):
            return None
        job = message.get("job")
        if not isinstance(job, dict):
            job = self.api.request("GET", job_path(message["job_id"]))["job"]
        known = self.jobs.get(job["job_id"])
        previous = message.get("previous_status") or (known["status"] if known else None)
        self.jobs[job["job_id"]] = job
        if job["status"] != "running":
            self.progress.pop(job["job_id"], None)
        self._trim()
        if known is not None and known["status"] == job["status"]:
            return None
        self.messages += 1
        return previous if isinstance(previous, str) else None, job

    def refresh(self, listed: list[dict[str, Any]]) -> list[tuple[str | None, dict[str, Any]]]:
        """Take the list read again after a reconnection (no change was heard meanwhile): the changes it shows,
        oldest job first. A job on the board the list no longer reaches is read on its own while active."""
        listed_ids = {job["job_id"] for job in listed}
        others = [
            job["job_id"]
            for job in self.jobs.values()
            if job["job_id"] not in listed_ids and job["status"] not in TERMINAL
        ]
        fresh = listed + [self.api.request("GET", job_path(job_id))["job"] for job_id in others]
        changes: list[tuple[str | None, dict[str, Any]]] = []
        for job in reversed(fresh):
            known = self.jobs.get(job["job_id"])
            if known is None or known["status"] != job["status"]:
                changes.append((known["status"] if known else None, job))
            self.jobs[job["job_id"]] = job
            if job["status"] != "running":
                self.progress.pop(job["job_id"], None)
        self.messages += len(changes)
        self._trim()
        return changes

    def _trim(self) -> None:
        # Ended jobs leave first, the oldest first; a running one always stays in view.
        while len(self.jobs) > self.limit:
            ended = [job for job in self.ordered() if job["status"] in TERMINAL]
            if not ended:
                return
            del self.jobs[ended[-1]["job_id"]]

    def ordered(self) -> list[dict[str, Any]]:
        return sorted(self.jobs.values(), key=lambda job: str(job.get("created_at") or ""), reverse=True)

    def read_progress(self, clock: Callable[[], float]) -> bool:
        """Stage and progress of the running jobs whose last reading is old enough; True when one was read."""
        read = False
        for job in self.ordered():
            job_id = job["job_id"]
            if job["status"] != "running" or clock() - self.progress_read.get(job_id, -1e9) < PROGRESS_EVERY_SECONDS:
                continue
            self.progress_read[job_id] = clock()
            try:
                self.progress[job_id] = self.api.request("GET", job_path(job_id, "/inline-progress"))
            except CliError:
                # A passing failure (the provider, a 5xx) only leaves this job's progress as it was for a while.
                continue
            read = True
        return read


def watch(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many jobs to show, newest first.")] = 20,
) -> None:
    """A live table of the newest jobs, redrawn as the WebSocket tells of changes: stage, progress, elapsed, cost.
    Ctrl-C stops it. When the output is not a terminal, the table is printed once, then a line per change."""
    api = api_for(ctx)
    console = out(ctx)
    with live_socket(ctx, api) as messages:
        # Listening before reading the list: a change in between is heard (and told once, see _Board.apply).
        board = _Board(api, read_jobs(api, limit=limit), limit)
        note(f"watching {messages.url} (Ctrl-C stops)")
        board.read_progress(time.monotonic)

        def table() -> Any:
            running = sum(job["status"] == "running" for job in board.jobs.values())
            heard = f"{board.messages} change{'' if board.messages == 1 else 's'} heard"
            caption = f"{len(board.jobs)} jobs, {running} running · {heard} · Ctrl-C stops"
            return views.watch_table(board.ordered(), board.progress, now_for(ctx), caption, console.width)

        if not console.is_terminal:
            console.print(table())
            _listen(board, messages, lambda change: _print_change(console, change))
            return
        with Live(table(), console=console, auto_refresh=False, redirect_stderr=False) as live:
            # A line written to the terminal under the live table would be drawn over: printed above it instead.
            messages.say = lambda text: live.console.print(Text(text))
            # Redrawn every second as well as on each message: a running job's elapsed time and cost so far tick.
            _listen(board, messages, lambda change: None, lambda: live.update(table(), refresh=True))


def _listen(
    board: _Board,
    messages: Messages,
    on_change: Callable[[tuple[str | None, dict[str, Any]]], None],
    every_second: Callable[[], None] = lambda: None,
) -> None:
    """Take the socket's messages into `board` until Ctrl-C, keeping the line alive and the progress fresh."""
    quiet_since = time.monotonic()
    reread_due: float | None = None  # when to read the list again after a reconnection (None: no need)
    try:
        while messages.listening:
            if reread_due is not None and messages.clock() >= reread_due:
                # Nothing was heard while the socket was away: the list, read again, shows what changed.
                try:
                    changes = board.refresh(read_jobs(board.api, limit=board.limit))
                except CliError as exc:
                    messages.say(f"could not read the job list again after the reconnection ({exc}); trying again")
                    reread_due = messages.clock() + GAP_RETRY_SECONDS
                else:
                    reread_due = None
                    for changed in changes:
                        on_change(changed)
            message = messages.next(timeout=1.0)
            if message is not None and message.get("type") == RECONNECTED:
                quiet_since = time.monotonic()
                reread_due = messages.clock()
            elif message is not None:
                quiet_since = time.monotonic()
                change = board.apply(message)
                if change is not None:
                    on_change(change)
            elif time.monotonic() - quiet_since > PING_EVERY_SECONDS:
                messages.send({"action": "ping"})
                quiet_since = time.monotonic()
            board.read_progress(time.monotonic)
            every_second()
    except KeyboardInterrupt:
        pass
    every_second()


def _print_change(console: Console, change: tuple[str | None, dict[str, Any]]) -> None:
    previous, job = change
    moment = time.strftime("%H:%M:%S", time.gmtime())
    line = f"{moment}  {job['job_id']}  {previous or 'new'} → {job['status']}  {job.get('model') or ''}".rstrip()
    console.print(Text(line))
    console.file.flush()  # a pipe would keep it otherwise


def register(app: typer.Typer) -> None:
    for command in (logs, watch):
        app.command(command.__name__)(reported(command))
