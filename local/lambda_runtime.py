"""Loading and invoking the functions of template.yaml in this process, as Lambda would."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "jobsync"

Handler = Callable[[dict[str, Any], Any], Any]


def use_layer() -> None:
    """Put the jobsync layer on sys.path, where Lambda puts /opt/python."""
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))


@dataclass
class LambdaContext:
    """The parts of Lambda's context object the handlers and Powertools read."""

    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


_loaded: dict[Path, Handler] = {}
_lock = threading.Lock()
# Powertools keeps one metric set per process: Lambda runs one invocation at a time in it, this process
# runs many in threads. Without a lock, one thread's flush could clear the set between another's check
# that it holds metrics and its serializing them ("Must contain at least one metric": a 500).
METRICS_LOCK = threading.RLock()


def load_handler(code_uri: str | Path, handler: str = "app.lambda_handler") -> Handler:
    """The handler at `code_uri` (a folder such as functions/list_jobs/), each app.py as its own module."""
    module_name, _, attribute = handler.rpartition(".")
    path = (ROOT / code_uri / f"{module_name}.py").resolve()
    with _lock:
        if path not in _loaded:
            use_layer()
            _share_metrics_between_threads()
            spec = importlib.util.spec_from_file_location(f"jobsync_function_{path.parent.name}", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            _loaded[path] = getattr(module, attribute)
        return _loaded[path]


def _share_metrics_between_threads() -> None:
    """Every change to the process's one metric set, and every flush of it, under METRICS_LOCK (once)."""
    from jobsync.observability import metrics

    provider = metrics.provider
    if getattr(provider, "_jobsync_locked", False):
        return
    for name in ("add_metric", "add_dimension", "add_metadata", "flush_metrics", "clear_metrics"):
        setattr(provider, name, _under_metrics_lock(getattr(provider, name)))
    provider._jobsync_locked = True  # type: ignore[attr-defined]


def _under_metrics_lock(method: Callable[..., Any]) -> Callable[..., Any]:
    def locked(*args: Any, **kwargs: Any) -> Any:
        with METRICS_LOCK:
            return method(*args, **kwargs)

    return locked


def invoke(code_uri: str | Path, handler: str, event: dict[str, Any], *, timeout: float = 30.0) -> Any:
    name = Path(code_uri).name
    return load_handler(code_uri, handler)(event, LambdaContext(function_name=name, timeout_seconds=timeout))


# Powertools prints each CloudWatch embedded-metric (EMF) object as one line of JSON on stdout.
EMF_PREFIX = '{"_aws"'


class MetricLinesToFile:
    """Stands in for sys.stdout: EMF metric lines go to a file, every other line to the terminal.

    In AWS a function's stdout is its CloudWatch log, where EMF lines become metrics; on a terminal
    they are only noise. Lines are gathered per thread, as the functions run on many threads.
    """

    def __init__(self, terminal: TextIO, metrics: TextIO) -> None:
        self.terminal = terminal
        self.metrics = metrics
        self._pending = threading.local()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        *lines, rest = (getattr(self._pending, "text", "") + text).split("\n")
        self._pending.text = rest
        for line in lines:
            self._emit(line + "\n")
        return len(text)

    def _emit(self, line: str) -> None:
        target = self.metrics if line.startswith(EMF_PREFIX) else self.terminal
        if target.closed:  # a function still running as the stack exits
            return
        with self._lock:
            target.write(line)
            target.flush()

    def flush(self) -> None:
        rest = getattr(self._pending, "text", "")
        if rest and not rest.startswith(EMF_PREFIX):  # an EMF line waits for its end
            self._pending.text = ""
            with self._lock:
                self.terminal.write(rest)
        self.terminal.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.terminal, name)  # isatty, fileno, encoding...


@contextlib.contextmanager
def metric_lines_to(path: Path) -> Iterator[MetricLinesToFile]:
    """While inside, the process's EMF metric lines go to `path` (started afresh), the rest to stdout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stdout
    with path.open("w", encoding="utf-8") as metrics:
        sys.stdout = router = MetricLinesToFile(terminal, metrics)
        try:
            yield router
        finally:
            router.flush()
            sys.stdout = terminal
