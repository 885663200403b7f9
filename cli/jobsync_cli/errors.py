"""The one way the command fails: a line on stderr that says what to fix, an exit code, never a traceback."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec

import typer
from rich.console import Console
from rich.text import Text

# Exit codes: 1 the API refused or failed, 2 the command or its environment needs fixing (as for usage errors),
# 3 the WebSocket of `watch` or `logs --follow` dropped and could not be opened again in time.
API_FAILED = 1
FIX_THE_COMMAND = 2
CONNECTION_LOST = 3

P = ParamSpec("P")


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = API_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def error_line(message: str) -> None:
    Console(stderr=True, soft_wrap=True, highlight=False).print(Text(f"jobsync: {message}"))


def reported(command: Callable[P, None]) -> Callable[P, None]:
    """A command whose failures end as one line and an exit code (JOBSYNC_DEBUG=1 lets an unexpected one through)."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except CliError as exc:
            error_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            if os.environ.get("JOBSYNC_DEBUG"):
                raise
            error_line(f"unexpected {type(exc).__name__}: {exc} (JOBSYNC_DEBUG=1 shows where)")
            raise typer.Exit(API_FAILED) from None

    return run
