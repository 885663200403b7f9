"""The `jobsync` command: its root and where its sub-commands come from."""

from __future__ import annotations

import typer

from jobsync_cli import tokens

app = typer.Typer(
    name="jobsync",
    help="Talk to a jobsync API: JOBSYNC_URL (default http://127.0.0.1:8001), with the token in JOBSYNC_TOKEN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(tokens.app, name="token")


def main() -> None:
    app()
