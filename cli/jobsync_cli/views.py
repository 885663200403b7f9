"""How jobs look on a terminal: the list's table (the dashboard's columns), one job, the metrics, the watch table.

Every function here is pure (a job's JSON and `now` in, a rich renderable out), so the commands stay short and
the tests can read what a user sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rich.console import Group, JustifyMethod, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

ACTIVE = ("pending", "uploading", "queued", "running")
STATUSES = (*ACTIVE, "completed", "failed", "cancelled")
_STATUS_STYLE = {
    "pending": "dim",
    "uploading": "cyan",
    "queued": "yellow",
    "running": "bold blue",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "magenta",
}
DASH = "—"


def parse_time(value: object) -> datetime | None:
    """A job's ISO 8601 time (Replicate's nanoseconds included) as an aware datetime; None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:  # Python reads at most six fraction digits
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def duration(seconds: object) -> str:
    """`1h 02m 03s`, `4m 05s`, `6s`, as the dashboard writes it."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return DASH
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def cost(value: object) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return DASH
    return f"${value:.4f}"


def status_text(status: object) -> Text:
    name = str(status) if status else DASH
    return Text(name, style=_STATUS_STYLE.get(name, ""))


def created(job: Mapping[str, Any]) -> str:
    moment = parse_time(job.get("created_at"))
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if moment else DASH


def running_seconds(job: Mapping[str, Any], now: datetime) -> float | None:
    """How long a running job has run so far (from its start), else None."""
    started = parse_time(job.get("started_at"))
    if job.get("status") != "running" or started is None:
        return None
    return max(0.0, (now - started).total_seconds())


def elapsed_and_cost(job: Mapping[str, Any], now: datetime) -> tuple[str, str]:
    """The duration and cost columns: a running job's time so far and its cost so far (≈), like the dashboard."""
    so_far = running_seconds(job, now)
    if so_far is None:
        return duration(job.get("duration_seconds")), cost(job.get("cost_usd"))
    price = job.get("price_per_second_usd")
    estimate = f"≈ {cost(so_far * price)}" if isinstance(price, (int, float)) else DASH
    return duration(so_far), estimate


@dataclass
class _Column:
    name: str
    cells: list[RenderableType]
    # Columns a narrow terminal leaves out, the highest number first; 0: always shown, never cut.
    drop_order: int = 0
    justify: JustifyMethod = "left"
    # Cut with an ellipsis when the line is too long (a model name, details); the others keep their width.
    cut_to: int | None = None
    width: int | None = None

    def natural_width(self) -> int:
        if self.width is not None:
            return self.width
        widest = max([len(self.name), *(_cell_len(cell) for cell in self.cells)])
        return min(widest, self.cut_to) if self.cut_to else widest


def _cell_len(cell: RenderableType) -> int:
    if isinstance(cell, Text):
        return cell.cell_len
    if isinstance(cell, str):
        return Text(cell).cell_len
    return 0


_GAP = 2  # rich's padding between two columns of a box-less table
_SHORTEST_CUT = 12  # a column cut shorter than this says too little to keep


def _fitted(columns: list[_Column], width: int, caption: str | None = None) -> Table:
    """One line a job within `width`: optional columns leave (details first), then cut columns shrink to fit;
    a job id, a status or a cost is never cut (the id is what the other commands take)."""
    shown = list(columns)

    def needed() -> int:
        return sum(column.natural_width() for column in shown) + _GAP * (len(shown) - 1)

    def slack() -> int:  # how much the cut columns could give up
        return sum(max(0, column.natural_width() - _SHORTEST_CUT) for column in shown if column.cut_to)

    while needed() - slack() > width and any(column.drop_order for column in shown):
        shown.remove(max(shown, key=lambda column: column.drop_order))
    table = Table(box=None, header_style="bold", pad_edge=False, caption=caption, caption_justify="left")
    excess = max(0, needed() - width)
    for column in shown:
        column_width = column.natural_width()
        if column.cut_to and excess:
            cut = min(excess, max(0, column_width - _SHORTEST_CUT))
            column_width -= cut
            excess -= cut
        table.add_column(
            column.name,
            justify=column.justify,
            no_wrap=True,
            overflow="ellipsis",
            width=column_width,
        )
    for row in range(len(columns[0].cells) if columns else 0):
        table.add_row(*(column.cells[row] for column in shown))
    return table


def jobs_table(jobs: Iterable[Mapping[str, Any]], now: datetime, width: int = 200) -> Table:
    """The list as the dashboard shows it: status, model, id, created, duration and cost (so far), details."""
    jobs = list(jobs)
    clocks = [elapsed_and_cost(job, now) for job in jobs]
    return _fitted(
        [
            _Column("STATUS", [status_text(job.get("status")) for job in jobs]),
            _Column("MODEL", [Text(str(job.get("model") or DASH)) for job in jobs], drop_order=1, cut_to=36),
            _Column("JOB ID", [Text(str(job.get("job_id"))) for job in jobs]),
            _Column("CREATED (UTC)", [created(job) for job in jobs], drop_order=2),
            _Column("DURATION", [elapsed for elapsed, _ in clocks], justify="right"),
            _Column("COST", [so_far for _, so_far in clocks], justify="right"),
            _Column(
                "DETAILS",
                [Text(str(job.get("error_message") or job.get("config_name") or "")) for job in jobs],
                drop_order=3,
                cut_to=40,
            ),
        ],
        width,
    )


def job_view(job: Mapping[str, Any], now: datetime) -> Group:
    """One job: its facts, then its status history."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    elapsed, so_far = elapsed_and_cost(job, now)
    price = job.get("price_per_second_usd")
    rows: list[tuple[str, Text | str]] = [
        ("job", Text(str(job.get("job_id")))),
        ("status", status_text(job.get("status"))),
        ("provider", str(job.get("provider") or DASH)),
        ("model", Text(str(job.get("model") or DASH))),
        ("config", Text(str(job.get("config_name") or DASH))),
        ("created", str(job.get("created_at") or DASH)),
        ("started", str(job.get("started_at") or DASH)),
        ("completed", str(job.get("completed_at") or DASH)),
        ("duration", elapsed + (" so far" if running_seconds(job, now) is not None else "")),
        ("cost", so_far),
        ("hardware", f"{job.get('hardware_type') or DASH}" + (f" at ${price:.6f}/s" if price else "")),
    ]
    if job.get("error_message"):
        rows.append(("error", Text(str(job["error_message"]), style="red")))
    if job.get("output_url"):
        rows.append(("output", Text(str(job["output_url"]))))
    for name, value in rows:
        facts.add_row(name, value)
    history = Table("STATUS", "AT (UTC)", box=None, header_style="bold", pad_edge=False, title_justify="left")
    for step in job.get("history") or []:
        history.add_row(status_text(step.get("status")), str(step.get("at") or DASH))
    return Group(facts, Text(""), Text("history", style="bold"), history)


def metrics_table(metrics: Mapping[str, Any]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("jobs", str(metrics.get("job_count", DASH)))
    table.add_row("active", str(metrics.get("active_count", DASH)))
    by_status = metrics.get("jobs_by_status") or {}
    for status in STATUSES:
        table.add_row(status_text(status), str(by_status.get(status, 0)))
    table.add_row("total cost", cost(metrics.get("total_cost_usd")))
    return table


def watch_table(
    jobs: Iterable[Mapping[str, Any]],
    progress: Mapping[str, Mapping[str, Any]],
    now: datetime,
    note: str = "",
    width: int = 200,
) -> Table:
    """The live table of `jobsync watch`: status, model, id, stage, a progress bar, elapsed and cost so far."""
    jobs = list(jobs)
    stages: list[RenderableType] = []
    bars: list[RenderableType] = []
    for job in jobs:
        running = job.get("status") == "running"
        seen = progress.get(str(job.get("job_id"))) or {}
        percent = seen.get("progress") if running else None
        stages.append(Text(str(seen.get("stage") or DASH) if running else DASH))
        bar = Table.grid(padding=(0, 1))
        if isinstance(percent, (int, float)) and not isinstance(percent, bool):
            bar.add_row(ProgressBar(total=100, completed=float(percent), width=18), f"{percent:3.0f}%")
        else:
            bar.add_row(Text(DASH, style="dim"))
        bars.append(bar)
    clocks = [elapsed_and_cost(job, now) for job in jobs]
    return _fitted(
        [
            _Column("STATUS", [status_text(job.get("status")) for job in jobs]),
            _Column("MODEL", [Text(str(job.get("model") or DASH)) for job in jobs], drop_order=1, cut_to=36),
            _Column("JOB ID", [Text(str(job.get("job_id"))) for job in jobs]),
            _Column("STAGE", stages, drop_order=2, cut_to=17),
            _Column("PROGRESS", bars, drop_order=3, width=23),
            _Column("ELAPSED", [elapsed for elapsed, _ in clocks], justify="right"),
            _Column("COST", [so_far for _, so_far in clocks], justify="right"),
        ],
        width,
        caption=note or None,
    )
