"""The `jobsync` command, run in the test's process through its entry point (a process costs 0.4 s of CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from typer.testing import CliRunner

from jobsync_cli.app import app

# The installed command, which the tests that are about it run as a process.
JOBSYNC = Path(sys.executable).parent / "jobsync"


def run_in_process(args: tuple[str, ...] | list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`jobsync <args>` with exactly the environment `env` (nothing else set while it runs), as the installed
    command would run with it: its exit code, stdout and stderr, with an uncaught exception's traceback on stderr
    as the interpreter would print it."""
    cleared: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    result = CliRunner().invoke(app, list(args), env={**cleared, **env})
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess([str(JOBSYNC), *args], result.exit_code, result.stdout, stderr)
