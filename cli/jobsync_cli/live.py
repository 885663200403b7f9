"""The API's WebSocket as the command uses it: connect with the token, send actions, read JSON messages.

Built on the `websockets` package's synchronous client; tests hand in their own `connect` through the typer
context (`obj["connect"]`), a function of the URL returning anything with send, recv(timeout) and close.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import typer

from jobsync_cli.client import Api
from jobsync_cli.errors import CliError

OPEN_SECONDS = 30.0


class Socket(Protocol):
    def send(self, message: str) -> None: ...

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message; raises TimeoutError when none came within `timeout`."""

    def close(self) -> None: ...


Connect = Callable[[str], Socket]


def _real_connect(url: str) -> Socket:
    from websockets.sync.client import connect

    return connect(url, open_timeout=OPEN_SECONDS, max_size=2**22)


def _connect_for(ctx: typer.Context) -> Connect:
    given = ctx.obj.get("connect") if isinstance(ctx.obj, dict) else None
    return given if callable(given) else _real_connect


@contextmanager
def live_socket(ctx: typer.Context, api: Api) -> Iterator[Messages]:
    """The API's WebSocket, open for the `with` block; a failure to open it is a CliError naming what to fix."""
    url = api.websocket_url()
    shown = url.split("?", 1)[0]
    try:
        socket = _connect_for(ctx)(url)
    except CliError:
        raise
    except Exception as exc:  # noqa: BLE001 - every way a handshake fails is told as one line
        raise CliError(_handshake_failure(shown, exc)) from None
    try:
        with _interrupt_flag() as interrupted:
            yield Messages(socket, shown, interrupted)
    finally:
        try:
            socket.close()
        except Exception:  # noqa: BLE001, S110 - closing a socket that already broke changes nothing
            pass


@contextmanager
def optional_socket(ctx: typer.Context, api: Api) -> Iterator[Messages | None]:
    """The API's WebSocket, or None (and a note on stderr) when it cannot be opened: for commands that only
    add to their answer with it."""
    try:
        opened = live_socket(ctx, api)
        messages = opened.__enter__()
    except CliError as exc:
        from jobsync_cli.errors import error_line

        error_line(f"{exc} (going on without live messages)")
        yield None
        return
    try:
        yield messages
    finally:
        opened.__exit__(None, None, None)


@contextmanager
def _interrupt_flag() -> Iterator[threading.Event]:
    """Ctrl-C as a flag that the listening loops check between two reads (each read waits at most a second).

    Raised as KeyboardInterrupt in the middle of the WebSocket client's read, it could leave the client's
    lock taken, and closing the socket then waited forever (seen on a loaded machine). A second Ctrl-C
    stops at once, as KeyboardInterrupt.
    """
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread takes signals
        yield interrupted
        return

    def on_interrupt(signum: int, frame: object) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _handshake_failure(url: str, exc: Exception) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        return f"401: the WebSocket {url} refused the token: check JOBSYNC_TOKEN"
    if status == 403:
        return f"403: the WebSocket {url} refused this token's scope"
    if status is not None:
        return f"{status}: the WebSocket {url} refused the connection (at most 5 per address at once)"
    return f"cannot reach the WebSocket {url}: {type(exc).__name__}: {exc}"


class Messages:
    """JSON messages from the socket; non-JSON frames are skipped."""

    def __init__(self, socket: Socket, url: str, interrupted: threading.Event | None = None) -> None:
        self._socket = socket
        self.url = url
        self.interrupted = interrupted or threading.Event()  # set by Ctrl-C: the caller stops listening

    @property
    def listening(self) -> bool:
        return not self.interrupted.is_set()

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._socket.send(json.dumps(message))
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"the WebSocket {self.url} closed: {type(exc).__name__}: {exc}") from None

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON object, or None when nothing came within `timeout` seconds."""
        try:
            raw = self._socket.recv(timeout=timeout)
        except TimeoutError:
            return None
        except Exception as exc:  # noqa: BLE001 - the server closed or the line broke
            raise CliError(f"the WebSocket {self.url} closed: {type(exc).__name__}: {exc}") from None
        try:
            message = json.loads(raw)
        except (ValueError, TypeError):
            return {}
        return message if isinstance(message, dict) else {}
