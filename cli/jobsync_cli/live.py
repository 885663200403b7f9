"""The API's WebSocket as the command uses it: connect with the token, send actions, read JSON messages, and
connect again when the socket drops.

Built on the `websockets` package's synchronous client; tests hand in their own `connect` through the typer
context (`obj["connect"]`), a function of the URL returning anything with send, recv(timeout) and close, and
their own clock, sleep and jitter (`obj["reconnection"]`, a Reconnection).

A socket drops when the stack restarts, the network blips, or API Gateway ends it (2 hours at most, 10 minutes
idle). Messages then says so on stderr, connects again after a capped, jittered exponential wait, sends again
what the command asked to keep (its follow requests), says so, and hands the command one RECONNECTED message so
it can fill the gap (nothing was pushed to it while it was away). After GIVE_UP_SECONDS without a connection it
gives up with a one-line error and the exit code CONNECTION_LOST.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

import typer
from rich.console import Console
from rich.text import Text

from jobsync_cli.client import Api
from jobsync_cli.errors import CONNECTION_LOST, CliError

OPEN_SECONDS = 30.0
# A reconnection's handshake: short, so a socket that cannot be opened is tried again soon.
REOPEN_SECONDS = 10.0
# The waits before each attempt to connect again: FIRST, doubling up to CAP, each between half and all of that
# (the jitter spreads the clients of a restarted stack apart); given up after GIVE_UP without a connection.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_CAP_SECONDS = 15.0
GIVE_UP_SECONDS = 300.0
# The message Messages.next hands the command once the socket is open again (no server sends this type).
RECONNECTED = "jobsync_cli.reconnected"


class Socket(Protocol):
    def send(self, message: str) -> None: ...

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message; raises TimeoutError when none came within `timeout`."""

    def close(self) -> None: ...


Connect = Callable[[str], Socket]


@dataclass(frozen=True)
class Reconnection:
    """How a dropped socket is opened again: the clock, the sleep and the jitter (random in [0, 1)) are
    parameters so that tests run the waits on a fake clock."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random
    first_seconds: float = RECONNECT_FIRST_SECONDS
    cap_seconds: float = RECONNECT_CAP_SECONDS
    give_up_seconds: float = GIVE_UP_SECONDS

    def waits(self) -> Iterator[float]:
        """Before each attempt: half the capped exponential step, plus a random part of the other half."""
        step = self.first_seconds
        while True:
            yield step / 2 + self.jitter() * step / 2
            step = min(step * 2, self.cap_seconds)


def _real_connect(url: str, open_timeout: float = OPEN_SECONDS) -> Socket:
    from websockets.sync.client import connect

    # legacy=True: the connection itself, closed by Messages (websockets 17.1 warns without it, and its future
    # default hands back a reconnecting iterator instead, which would not fill the gap after a drop).
    return connect(url, open_timeout=open_timeout, max_size=2**22, legacy=True)


def _connect_for(ctx: typer.Context) -> tuple[Connect, Connect]:
    """How to open the socket the first time and again after a drop (a test's `connect` does both)."""
    given = ctx.obj.get("connect") if isinstance(ctx.obj, dict) else None
    if callable(given):
        return given, given
    return _real_connect, lambda url: _real_connect(url, REOPEN_SECONDS)


def _reconnection_for(ctx: typer.Context) -> Reconnection:
    given = ctx.obj.get("reconnection") if isinstance(ctx.obj, dict) else None
    return given if isinstance(given, Reconnection) else Reconnection()


def _opened(connect: Connect, url: str, shown: str) -> Socket:
    try:
        return connect(url)
    except CliError:
        raise
    except Exception as exc:  # noqa: BLE001 - every way a handshake fails is told as one line
        raise CliError(_handshake_failure(shown, exc)) from None


@contextmanager
def live_socket(ctx: typer.Context, api: Api) -> Iterator[Messages]:
    """The API's WebSocket, open for the `with` block (and opened again when it drops); a failure to open it
    the first time is a CliError naming what to fix."""
    url = api.websocket_url()
    shown = url.split("?", 1)[0]
    connect, reconnect = _connect_for(ctx)
    socket = _opened(connect, url, shown)
    with _interrupt_flag() as interrupted:
        messages = Messages(
            socket,
            shown,
            interrupted,
            reopen=lambda: reconnect(url),
            reconnection=_reconnection_for(ctx),
        )
        try:
            yield messages
        finally:
            messages.close()


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


class Interrupt(threading.Event):
    """Ctrl-C: set by the first press. While `at_once` (no socket is being read: waiting to reconnect), a press
    raises KeyboardInterrupt at once as well."""

    at_once = False


@contextmanager
def _interrupt_flag() -> Iterator[Interrupt]:
    """Ctrl-C as a flag that the listening loops check between two reads (each read waits at most a second).

    Raised as KeyboardInterrupt in the middle of the WebSocket client's read, it could leave the client's
    lock taken, and closing the socket then waited forever (seen on a loaded machine). A second Ctrl-C
    stops at once, as KeyboardInterrupt, and so does the first while the command waits to reconnect.
    """
    interrupted = Interrupt()
    if threading.current_thread() is not threading.main_thread():  # only the main thread takes signals
        yield interrupted
        return

    def on_interrupt(signum: int, frame: object) -> None:
        if interrupted.is_set() or interrupted.at_once:
            interrupted.set()
            raise KeyboardInterrupt
        interrupted.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _refusal_status(exc: Exception) -> int | None:
    """The HTTP status with which the server refused a handshake (None: it did not answer one)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _handshake_failure(url: str, exc: Exception) -> str:
    status = _refusal_status(exc)
    if status == 401:
        return f"401: the WebSocket {url} refused the token: check JOBSYNC_TOKEN"
    if status == 403:
        return f"403: the WebSocket {url} refused this token's scope"
    if status is not None:
        return f"{status}: the WebSocket {url} refused the connection (at most 5 per address at once)"
    return f"cannot reach the WebSocket {url}: {type(exc).__name__}: {exc}"


def _note(text: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(Text(text))


class Messages:
    """JSON messages from the socket; non-JSON frames are skipped. With `reopen`, a dropped socket is opened
    again (see the module's doc); without it, a drop is a CliError."""

    def __init__(
        self,
        socket: Socket,
        url: str,
        interrupted: threading.Event | None = None,
        *,
        reopen: Callable[[], Socket] | None = None,
        reconnection: Reconnection | None = None,
    ) -> None:
        self._socket: Socket | None = socket
        self.url = url
        self.interrupted = interrupted or Interrupt()  # set by Ctrl-C: the caller stops listening
        self._reopen = reopen
        self._reconnection = reconnection or Reconnection()
        self._kept: list[dict[str, Any]] = []  # sent again after each reconnection (follow requests)
        self._reconnected = False  # a RECONNECTED message is owed to the command
        # Where the lines about losing and regaining the socket go: stderr, unless a live display owns the screen.
        self.say: Callable[[str], None] = _note

    @property
    def listening(self) -> bool:
        return not self.interrupted.is_set()

    def clock(self) -> float:
        """Monotonic seconds, from the clock the reconnections wait on (a test's fake one)."""
        return self._reconnection.clock()

    def send(self, message: dict[str, Any], *, keep: bool = False) -> None:
        """Send `message`; `keep`: send it again after each reconnection (a subscription, such as a follow)."""
        if keep:
            self._kept.append(message)
        try:
            self._live_socket().send(json.dumps(message))
        except CliError:
            raise
        except Exception as exc:  # noqa: BLE001 - the server closed or the line broke
            self._lost(exc)  # a kept message went again with the others

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON object, or None when nothing came within `timeout` seconds; {"type": RECONNECTED} once
        after the socket was opened again."""
        if self._reconnected and self.listening:
            self._reconnected = False
            return {"type": RECONNECTED}
        try:
            raw = self._live_socket().recv(timeout=timeout)
        except TimeoutError:
            return None
        except CliError:
            raise
        except Exception as exc:  # noqa: BLE001 - the server closed or the line broke
            self._lost(exc)
            return None
        try:
            message = json.loads(raw)
        except (ValueError, TypeError):
            return {}
        return message if isinstance(message, dict) else {}

    def drop(self, reason: str) -> None:
        """Treat the socket as lost (the API no longer knows it): connect again as after a drop."""
        self._lost(ConnectionError(reason))

    def close(self) -> None:
        socket, self._socket = self._socket, None
        if socket is None:
            return
        try:
            socket.close()
        except Exception:  # noqa: BLE001, S110 - closing a socket that already broke changes nothing
            pass

    def _live_socket(self) -> Socket:
        if self._socket is None:  # a reconnection was cut short by Ctrl-C
            raise KeyboardInterrupt
        return self._socket

    def _lost(self, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if self._reopen is None:
            raise CliError(f"the WebSocket {self.url} closed: {reason}")
        self.close()
        if not self.listening:
            return
        self.say(f"lost the WebSocket {self.url} ({reason}); connecting again (Ctrl-C stops)")
        lost_at = self._reconnection.clock()
        interrupted = self.interrupted
        if isinstance(interrupted, Interrupt):
            interrupted.at_once = True
        try:
            self._socket = self._connect_again(reason)
        except KeyboardInterrupt:
            interrupted.set()  # the loops see it and stop; nothing is open
            return
        finally:
            if isinstance(interrupted, Interrupt):
                interrupted.at_once = False
        self._reconnected = True
        self.say(f"connected again to {self.url} after {self._reconnection.clock() - lost_at:.0f} s")

    def _connect_again(self, reason: str) -> Socket:
        """A socket open again with the kept messages sent, trying until GIVE_UP_SECONDS have passed."""
        assert self._reopen is not None
        plan = self._reconnection
        lost_at = plan.clock()
        for wait in plan.waits():
            left = plan.give_up_seconds - (plan.clock() - lost_at)
            if left <= 0 or not self.listening:
                break
            plan.sleep(min(wait, left))
            if not self.listening:
                raise KeyboardInterrupt
            socket: Socket | None = None
            try:
                socket = self._reopen()
                for message in self._kept:
                    socket.send(json.dumps(message))
            except Exception as exc:  # noqa: BLE001 - a refused or broken attempt: wait longer, try again
                if _refusal_status(exc) in (401, 403):  # refused again at every attempt: say it now
                    raise CliError(_handshake_failure(self.url, exc)) from None
                reason = f"{type(exc).__name__}: {exc}"
                if socket is not None:
                    with suppress(Exception):
                        socket.close()
                continue
            return socket
        if not self.listening:
            raise KeyboardInterrupt
        minutes = plan.give_up_seconds / 60
        raise CliError(
            f"lost the WebSocket {self.url} and could not connect again for {minutes:g} minutes "
            f"(last: {reason}): is the API up?",
            CONNECTION_LOST,
        )
