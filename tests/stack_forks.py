"""`python -m local.stack` without its imports at every start: stacks forked from a process that made them once.

A stack start spends about 1.1 of its 2 s of CPU importing boto3, moto, uvicorn, pydantic and the local stack's
modules. The end-to-end tests start about twenty stacks; this module runs one process per test process (the
zygote, `python -m tests.stack_forks`) that imports those modules and nothing else (no thread, no socket, no
setting read), then forks a stack on request. The stack runs what `python -m local.stack` runs, `local.stack.main`,
with the environment, folder, log file and signal dispositions that command would have had, and exits as it
exits (`os._exit` with main's code). tests/e2e/test_make_run.py starts the command itself, as a user does.

The test process makes itself a child subreaper (Linux's PR_SET_CHILD_SUBREAPER): the zygote forks an
intermediate process that forks the stack and exits, so the stack becomes the test process's own child. The
test waits for it, signals and kills it as it would a subprocess, and its CPU time is counted as a child's.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
_PR_SET_CHILD_SUBREAPER = 36


class ForkedProcess:
    """A stack forked by the zygote and adopted by this process: the part of subprocess.Popen the tests use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(["python", "-m", "local.stack"], timeout or 0.0)
            time.sleep(pause)
            pause = min(0.1, pause * 2)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The test process's end of the zygote: one per test process, started on first use, ended at exit."""

    _lock = threading.Lock()
    _running: Zygote | None = None

    def __init__(self, env: Mapping[str, str]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.stack_forks"],
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        atexit.register(self.close)

    @classmethod
    def shared(cls, env: Mapping[str, str]) -> Zygote:
        """The running zygote (its environment: this process's, without the stack's own variables)."""
        with cls._lock:
            if cls._running is None or cls._running.process.poll() is not None:
                cls._running = cls(env)
            return cls._running

    def fork(self, env: Mapping[str, str], log_path: Path) -> ForkedProcess:
        """A stack running `local.stack.main` with exactly `env`, its stdout and stderr appended to `log_path`."""
        assert self.process.stdin is not None and self.process.stdout is not None
        with self._lock:
            self.process.stdin.write(json.dumps({"env": dict(env), "log": str(log_path)}) + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the stack zygote exited with {self.process.wait()}")
        return ForkedProcess(int(answer))

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the zygote's loop ends at the end of its input
            self.process.wait(timeout=60)


# ---- the zygote's side ---------------------------------------------------------------------------------


def _preload() -> None:
    """What every stack imports, imported before any fork; nothing here starts a thread or reads a setting."""
    from local import lambda_runtime, stack

    stack._without_httpx_command_line()  # as main() does first: httpx is imported below
    lambda_runtime.use_layer()
    import aws_lambda_powertools  # noqa: F401
    import aws_lambda_powertools.logging.correlation_paths  # noqa: F401
    import aws_lambda_powertools.metrics  # noqa: F401
    import boto3  # noqa: F401
    import boto3.dynamodb.conditions  # noqa: F401
    import boto3.dynamodb.transform  # noqa: F401
    import boto3.dynamodb.types  # noqa: F401
    import httpx  # noqa: F401
    import pydantic  # noqa: F401
    import pydantic_settings  # noqa: F401
    import uvicorn  # noqa: F401

    # The layer's modules whose import reads no environment variable (the functions' environment is set by
    # main, before it loads them): settings classes, models and the route table, the DynamoDB helpers.
    import jobsync.api.openapi  # noqa: F401
    import jobsync.api.routes  # noqa: F401
    import jobsync.config  # noqa: F401
    import jobsync.store.dynamo  # noqa: F401
    import local.async_invoke  # noqa: F401
    import local.dynamodb_server  # noqa: F401
    import local.gateway  # noqa: F401
    import local.notify_topic  # noqa: F401
    import local.persistence  # noqa: F401
    import local.replicate_simulator  # noqa: F401
    import local.streams  # noqa: F401
    import local.template  # noqa: F401

    # Powertools' logger and metrics, made when jobsync.observability is imported, read the environment.
    assert "jobsync.observability" not in sys.modules, "jobsync.observability must be imported by each stack"


def _run_stack(request: dict[str, Any]) -> None:
    """In the forked stack: the environment, folder and files `python -m local.stack` would have; then its main."""
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(ROOT)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        from local import stack

        code = stack.main([])
    except SystemExit as exit_request:  # as the interpreter exits on it
        code = exit_request.code if isinstance(exit_request.code, int) else 1
    except BaseException:  # noqa: BLE001 - printed as the interpreter would, then the exit code it would give
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as `python -m local.stack` exits: no interpreter teardown


def _serve(requests: IO[str], answers: IO[str]) -> None:
    for line in requests:
        request = json.loads(line)
        assert threading.active_count() == 1, "a thread in the zygote would be lost in every fork"
        answers.flush()
        reading, writing = os.pipe()
        intermediate = os.fork()
        if intermediate == 0:
            os.close(reading)
            stack_pid = os.fork()
            if stack_pid == 0:
                os.close(writing)
                _run_stack(request)
            os.write(writing, f"{stack_pid}\n".encode())
            os._exit(0)  # the stack is adopted by the nearest subreaper: the test process
        os.close(writing)
        with os.fdopen(reading) as pid_pipe:
            stack_pid_text = pid_pipe.readline()
        os.waitpid(intermediate, 0)  # exited: the stack is the test process's child from here on
        answers.write(stack_pid_text)
        answers.flush()


if __name__ == "__main__":
    _preload()
    _serve(sys.stdin, sys.stdout)
