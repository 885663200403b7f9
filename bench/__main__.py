"""`make bench`: every scaling figure beside its per-job baseline; a table, and bench-results.json.

.venv/bin/python -m bench                 # everything (a few minutes)
.venv/bin/python -m bench poll_1k fanout  # some groups; their figures are merged into bench-results.json
"""

from __future__ import annotations

import os

# Before jobsync is imported: its logger takes its level once. Warnings about a thousand jobs are not the table.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.harness import (  # noqa: E402
    DYNAMODB_HEAVY_SECONDS,
    DYNAMODB_SECONDS,
    POST_SECONDS,
    ROOT,
    use_repo_paths,
)

RESULTS = ROOT / "bench-results.json"
_DETAILS_LEFT_OUT = {"pages", "per_press"}  # in the JSON, too long for a line


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_number, value)) + "]"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _with_unit(value: Any, unit: str) -> str:
    text = _number(value)
    if value is None:
        return text
    return f"{text}×" if unit == "×" else f"{text} {unit}"


def table(figures: list[Any]) -> str:
    rows = [("figure", "value", "baseline", "ratio", "target", "ok")]
    for figure in figures:
        rows.append(
            (
                figure.key,
                _with_unit(figure.value, figure.unit),
                _with_unit(figure.baseline, figure.baseline_unit or figure.unit),
                "—" if figure.ratio is None else f"{figure.ratio:.3f}×",
                figure.target,
                "yes" if figure.ok else "NO",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def details(figures: list[Any]) -> str:
    lines = []
    for figure in figures:
        if "." in figure.key:
            continue  # one function's cold start: in the JSON
        extra = {key: value for key, value in figure.extra.items() if key not in _DETAILS_LEFT_OUT}
        if extra:
            lines.append(f"{figure.key}: " + ", ".join(f"{key} {_number(value)}" for key, value in extra.items()))
    return "\n".join(lines)


METHOD = (
    "Counts (provider requests, DynamoDB requests, writes and items read) are exact. Times are wall times "
    "without moto's own time (the time moto worked while no modelled wait was under way); every Replicate "
    f"answer takes 50 ms (429 past 3,000 reads a minute), every DynamoDB request {DYNAMODB_SECONDS * 1000:.0f} ms "
    f"({DYNAMODB_HEAVY_SECONDS * 1000:.0f} ms for transactions and batches), every WebSocket post "
    f"{POST_SECONDS * 1000:.0f} ms. Baselines marked (run) ran in this run on the same world."
)


def main(argv: list[str] | None = None) -> int:
    use_repo_paths()
    warnings.filterwarnings("ignore")
    from bench.figures import GROUPS

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", choices=[[], *GROUPS], metavar="group", help=", ".join(GROUPS))
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"default {RESULTS.name} at the repository root")
    args = parser.parse_args(argv)
    chosen = args.groups or list(GROUPS)

    started, load = time.monotonic(), os.getloadavg()[0]
    figures = []
    for name in chosen:
        print(f"measuring {name}…", flush=True)
        begun = time.monotonic()
        with contextlib.redirect_stdout(_Discard()):  # Powertools prints a metrics line every 100 values
            figures += GROUPS[name]()
        print(f"  {time.monotonic() - begun:.0f} s", flush=True)

    results: dict[str, Any] = {}
    if args.groups and args.output.exists():
        results = json.loads(args.output.read_text())  # a partial run updates its own figures only
    results.update({figure.key: figure.as_json() for figure in figures})
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    print()
    print(table(figures))
    print()
    print(details(figures))
    print()
    print(METHOD)
    print(f"\n{sum(f.ok for f in figures)} of {len(figures)} figures meet their target; written to {args.output}")
    print(
        f"bench time: {time.monotonic() - started:.0f} s; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
