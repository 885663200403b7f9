"""The `jobsync` command: its root and where its sub-commands come from."""

from __future__ import annotations

import typer

from jobsync_cli import jobs, tokens, watching

app = typer.Typer(
    name="jobsync",
    help="Talk to a jobsync API: JOBSYNC_URL (default http://127.0.0.1:8001), with the token in JOBSYNC_TOKEN "
    "(or url = and token = in ~/.config/jobsync/config.toml).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
jobs.register(app)
watching.register(app)
app.add_typer(tokens.app, name="token")


def main() -> None:
    app()
