"""`jobsync logs --follow` and `jobsync watch` when the WebSocket drops: they connect again after capped, jittered
waits on a fake clock, send their follow again, fill the gap from the HTTP API, say so on stderr in one line each
way, stop at once on Ctrl-C, and give up after a bound with one line and exit code 3. No wall time is involved:
the sockets are scripted and every wait goes through the injected sleep."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from jobsync_cli.app import app
from jobsync_cli.errors import CONNECTION_LOST
from jobsync_cli.live import Reconnection
from jobsync_cli.watching import _unseen
from tests.unit.test_jobs_cli import ENV, NOW, FakeApi, job

DROP = "drop"  # in a connection's script: the line breaks here


class Dropped(Exception):
    """What the WebSocket client raises when the line breaks (websockets' ConnectionClosedError)."""


class FakeClock:
    """Monotonic time that moves only when the command sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep()


class FakeServer:
    """The WebSocket's server side: connection n plays scripts[n] (a message, None for a quiet second, DROP, or a
    function to run then, e.g. changing the API while the line is down); after the last script, Ctrl-C.
    `refuse(attempt)` says whether connect attempt number `attempt` (1 is the first) fails."""

    def __init__(self, *scripts: list[Any], refuse: Callable[[int], Exception | None] = lambda attempt: None) -> None:
        self.scripts = [list(script) for script in scripts]
        self.refuse = refuse
        self.attempts = 0
        self.sent: list[list[dict[str, Any]]] = []  # what each connection was sent
        self.closed = 0

    def connect(self, url: str) -> FakeConnection:
        self.attempts += 1
        refusal = self.refuse(self.attempts)
        if refusal is not None:
            raise refusal
        if len(self.sent) >= len(self.scripts):
            raise AssertionError("the command connected more often than the test scripted")
        self.sent.append([])
        return FakeConnection(self, len(self.sent) - 1)


class FakeConnection:
    def __init__(self, server: FakeServer, index: int) -> None:
        self.server = server
        self.index = index

    def send(self, message: str) -> None:
        self.server.sent[self.index].append(json.loads(message))

    def recv(self, timeout: float | None = None) -> str:
        script = self.server.scripts[self.index]
        while script and callable(script[0]):
            script.pop(0)()
        if not script:
            if self.index == len(self.server.scripts) - 1:
                raise KeyboardInterrupt  # the user, once the test has nothing more to say
            raise Dropped("no close frame received or sent")
        step = script.pop(0)
        if step is None:
            raise TimeoutError
        if step == DROP:
            raise Dropped("no close frame received or sent")
        return json.dumps(step)

    def close(self) -> None:
        self.server.closed += 1


def run(api: Any, server: FakeServer, clock: FakeClock, *args: str, jitter: float = 0.5) -> Result:
    plan = Reconnection(clock=lambda: clock.now, sleep=clock.sleep, jitter=lambda: jitter)
    obj = {"transport": httpx.MockTransport(api), "now": NOW, "connect": server.connect, "reconnection": plan}
    return CliRunner().invoke(app, list(args), env=ENV, obj=obj)


def lines_pushed(*lines: str) -> dict[str, Any]:
    return {"type": "job_log_lines", "job_id": "job0001", "lines": list(lines)}


FOLLOW = {"action": "follow", "job_id": "job0001"}


# ------------------------------------------------------------------------------ logs --follow


def test_follow_connects_again_sends_its_follow_again_and_prints_the_gap_once() -> None:
    api = FakeApi([job(1, "running")])
    api.log_lines = ["a", "b"]

    def lines_come_while_the_line_is_down() -> None:
        api.log_lines = ["a", "b", "c", "d", "e", "f"]

    server = FakeServer(
        [lines_pushed("b", "c"), lines_come_while_the_line_is_down, DROP],
        [DROP],  # the second connection breaks again before anything came
        [
            # The first push on the third repeats what the gap's read printed, then goes on.
            lines_pushed("e", "f", "g"),
            {"type": "job_status_changed", "job_id": "job0001", "status": "completed"},
        ],
        refuse=lambda attempt: OSError("connection refused") if attempt == 2 else None,
    )
    clock = FakeClock()

    result = run(api, server, clock, "logs", "job0001", "--follow")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["a", "b", "c", "d", "e", "f", "g"]  # every line, each once
    assert server.sent == [[FOLLOW], [FOLLOW], [FOLLOW]]  # the follow went again on each new connection
    stderr = result.stderr.splitlines()
    lost = [line.split(" (")[0] for line in stderr if line.startswith("lost")]
    assert lost == ["lost the WebSocket ws://jobsync.test/live"] * 2
    assert len(api.asked("GET", "/api/cloud/jobs/job0001/logs")) == 3  # the first tail, then once a reconnection
    assert len([line for line in stderr if line.startswith("connected again to ws://jobsync.test/live")]) == 2
    assert stderr[-1] == "job job0001 ended: completed"
    assert "token" not in result.stderr  # the URL is shown without its token


def test_the_waits_grow_to_their_cap_with_jitter_and_the_gap_is_read_once_per_reconnection() -> None:
    api = FakeApi([job(1, "running")])
    refusals = 8
    server = FakeServer(
        [DROP],
        [{"type": "job_status_changed", "job_id": "job0001", "status": "failed"}],
        refuse=lambda attempt: OSError("connection refused") if 2 <= attempt <= refusals + 1 else None,
    )
    clock = FakeClock()

    result = run(api, server, clock, "logs", "job0001", "-f", jitter=0.5)

    assert result.exit_code == 0, result.output
    # Half the step plus half of the other half (jitter 0.5): steps 0.5, 1, 2, 4, 8, then 15 (the cap).
    assert clock.sleeps == [0.375, 0.75, 1.5, 3.0, 6.0, 11.25, 11.25, 11.25, 11.25]
    assert server.attempts == refusals + 2
    assert len(api.asked("GET", "/api/cloud/jobs/job0001/logs")) == 2  # the first tail, then the gap once
    assert "connected again to ws://jobsync.test/live after 57 s" in result.stderr


@pytest.mark.parametrize(("jitter", "waits"), [(0.0, [0.25, 0.5, 1.0, 2.0, 4.0, 7.5, 7.5]), (0.999, None)])
def test_each_wait_is_between_half_and_all_of_its_capped_step(jitter: float, waits: list[float] | None) -> None:
    plan = Reconnection(jitter=lambda: jitter)
    steps = [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    drawn = [wait for wait, _ in zip(plan.waits(), steps, strict=False)]
    assert all(step / 2 <= wait <= step for wait, step in zip(drawn, steps, strict=True))
    if waits is not None:
        assert drawn == waits


def test_after_five_minutes_without_a_connection_it_gives_up_with_one_line_and_exit_code_3() -> None:
    api = FakeApi([job(1, "running")])
    server = FakeServer([DROP], refuse=lambda attempt: OSError("connection refused") if attempt > 1 else None)
    clock = FakeClock()

    result = run(api, server, clock, "logs", "job0001", "-f")

    assert result.exit_code == CONNECTION_LOST == 3
    assert sum(clock.sleeps) == pytest.approx(300.0)  # tried until the bound, not past it
    assert 20 < server.attempts < 40  # the waits reached their cap: about one attempt every 11 s
    errors = [line for line in result.stderr.splitlines() if line.startswith("jobsync: ")]
    assert errors == [
        "jobsync: lost the WebSocket ws://jobsync.test/live and could not connect again for 5 minutes "
        "(last: OSError: connection refused): is the API up?"
    ]
    assert "Traceback" not in result.output


def test_ctrl_c_while_waiting_to_connect_again_stops_at_once(plain_ctrl_c) -> None:
    api = FakeApi([job(1, "running")])
    server = FakeServer([DROP], refuse=lambda attempt: OSError("connection refused") if attempt > 1 else None)
    clock = FakeClock()
    clock.on_sleep = lambda: os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C during the first wait

    result = run(api, server, clock, "logs", "job0001", "-f")

    assert result.exit_code == 0, result.output
    assert server.attempts == 1 and len(clock.sleeps) == 1  # no attempt after the Ctrl-C
    assert "jobsync:" not in result.stderr and "Traceback" not in result.output
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_during_a_slow_handshake_stops_it_rather_than_waiting_for_it(plain_ctrl_c) -> None:
    def slow_handshake(attempt: int) -> Exception | None:
        if attempt == 2:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the rest of the handshake: a Ctrl-C that only set the flag would let it finish
                pass
        return None

    api = FakeApi([job(1, "running")])
    server = FakeServer([DROP], [lines_pushed("never read")], refuse=slow_handshake)

    result = run(api, server, FakeClock(), "logs", "job0001", "-f")

    assert result.exit_code == 0, result.output
    assert server.attempts == 2 and len(server.sent) == 1  # the second connection was never made
    assert "connected again" not in result.stderr and "Traceback" not in result.output


def test_a_token_refused_when_connecting_again_is_one_line_at_once() -> None:
    class Refused(Exception):
        response = type("Response", (), {"status_code": 401})()

    api = FakeApi([job(1, "running")])
    server = FakeServer([DROP], refuse=lambda attempt: Refused("HTTP 401") if attempt > 1 else None)
    clock = FakeClock()

    result = run(api, server, clock, "logs", "job0001", "-f")

    assert result.exit_code == 1 and server.attempts == 2
    assert result.stderr.splitlines()[-1] == (
        "jobsync: 401: the WebSocket ws://jobsync.test/live refused the token: check JOBSYNC_TOKEN"
    )


def test_a_follow_the_api_answers_unknown_connection_connects_again_and_follows_again() -> None:
    api = FakeApi([job(1, "running")])
    api.log_lines = ["a"]
    unknown = {"type": "error", "error": "unknown_connection", "message": "this connection is not open any more"}
    server = FakeServer(
        [unknown],
        [{"type": "following", "job_id": "job0001"}, lines_pushed("b")],
    )

    result = run(api, server, FakeClock(), "logs", "job0001", "-f")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["a", "b"]
    assert server.sent == [[FOLLOW], [FOLLOW]] and server.closed >= 1
    assert "the API no longer knows this connection" in result.stderr


def test_a_job_that_ended_while_the_line_was_down_prints_its_last_lines_and_stops() -> None:
    api = FakeApi([job(1, "running")])
    api.log_lines = ["a"]

    def the_job_ends() -> None:
        api.log_lines = ["a", "b", "done"]
        api.jobs[0] = job(1, "completed")

    server = FakeServer([the_job_ends, DROP], [])

    result = run(api, server, FakeClock(), "logs", "job0001", "-f")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["a", "b", "done"]
    assert result.stderr.splitlines()[-1] == "job job0001 ended: completed"


@pytest.mark.parametrize(
    ("shown", "tail", "unseen", "reached"),
    [
        (["a", "b", "c"], ["b", "c", "d", "e"], ["d", "e"], True),  # the tail begins inside what was printed
        (["b", "c"], ["a", "b", "c", "d"], ["d"], True),  # what was printed lies inside the tail
        (["a", "b"], ["a", "b"], [], True),  # nothing new
        ([], ["a"], ["a"], True),
        (["x", "y"], ["c", "d"], ["c", "d"], False),  # more came than the tail holds: told, then printed
        (["a", "b", "a"], ["b", "a", "b", "a", "c"], ["c"], True),  # repeated lines: the newest full match
    ],
)
def test_the_gap_is_what_comes_after_the_last_printed_line(
    shown: list[str], tail: list[str], unseen: list[str], reached: bool
) -> None:
    assert _unseen(shown, tail) == (unseen, reached)


# ------------------------------------------------------------------------------ watch


def test_watch_connects_again_and_shows_a_change_made_while_the_line_was_down() -> None:
    api = FakeApi([job(2, "running", started_at="2026-11-30T07:59:00Z"), job(1, "queued")])

    def job_fails_meanwhile() -> None:
        api.jobs[0] = {**api.jobs[0], "status": "failed", "is_terminal": True, "is_active": False}

    started = job(1, "running", started_at="2026-11-30T07:58:00Z")
    late = {"type": "job_status_changed", "job_id": "job0002", "status": "failed", "previous_status": "running"}
    server = FakeServer(
        [None, job_fails_meanwhile, DROP],
        # The change made meanwhile may still be broadcast after the reconnection: the list showed it already.
        [late, {"type": "job_status_changed", "job_id": "job0001", "status": "running", "job": started}],
    )

    result = run(api, server, FakeClock(), "watch")

    assert result.exit_code == 0, result.output
    changes = [line.split(maxsplit=1)[1] for line in result.stdout.splitlines() if "→" in line]
    assert changes == [
        "job0002  running → failed  acme/flux-lora-trainer",  # from the list read again after the reconnection
        "job0001  queued → running  acme/flux-lora-trainer",  # heard on the new connection
    ]  # and the late broadcast of job0002's change is not told twice
    assert len(api.asked("GET", "/api/cloud/jobs")) == 2  # once to start, once after the reconnection
    assert server.sent == [[], []]  # watch follows nothing: it has nothing to send again
    assert "lost the WebSocket" in result.stderr and "connected again" in result.stderr


def test_in_a_terminal_watch_tells_of_the_reconnection_above_its_live_table() -> None:
    api = FakeApi([job(1, "queued")])
    server = FakeServer([DROP], [None])
    plan = Reconnection(clock=lambda: 0.0, sleep=lambda seconds: None, jitter=lambda: 0.5)
    obj = {"transport": httpx.MockTransport(api), "now": NOW, "connect": server.connect, "reconnection": plan}
    obj["terminal"] = True

    result = CliRunner().invoke(app, ["watch"], env=ENV, obj=obj)

    assert result.exit_code == 0, result.output
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout)
    assert "lost the WebSocket ws://jobsync.test/live" in screen and "connected again" in screen
    assert "lost the WebSocket" not in result.stderr  # written under the live table, a redraw would cover it


def test_a_failed_read_of_the_gap_is_tried_again_and_the_lines_pushed_meanwhile_wait_for_it() -> None:
    api = FakeApi([job(1, "running")])
    api.log_lines = ["a"]
    clock = FakeClock()
    logs_reads = 0

    def logs_fail_once_after_the_reconnection(request: httpx.Request) -> httpx.Response:
        nonlocal logs_reads
        if request.url.path.endswith("/logs"):
            logs_reads += 1
            if logs_reads == 2:
                return httpx.Response(503, json={"error": "store_unavailable", "message": "try again"})
        return api(request)

    def set_log(*lines: str) -> Callable[[], None]:
        return lambda: setattr(api, "log_lines", list(lines))

    def five_seconds_later() -> None:
        clock.now += 5.0

    server = FakeServer(
        [set_log("a", "b"), DROP],  # "b" comes while the line is down: nobody follows, nothing is pushed
        [
            set_log("a", "b", "c"),
            lines_pushed("c"),  # the gap is not read yet: printed now, "c" would come before "b"
            five_seconds_later,
            None,
            set_log("a", "b", "c", "d"),
            lines_pushed("d"),
        ],
    )

    result = run(logs_fail_once_after_the_reconnection, server, clock, "logs", "job0001", "-f")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["a", "b", "c", "d"]
    assert logs_reads == 3  # the first tail, the gap's read that failed, the one 5 s later
    assert "jobsync: 503: try again" not in result.stderr
    assert "could not read the lines that came while the connection was down (503: try again); trying again" in (
        result.stderr
    )


def test_watch_reads_the_list_again_later_when_that_read_fails_after_the_reconnection() -> None:
    api = FakeApi([job(1, "queued")])
    clock = FakeClock()
    list_reads = 0

    def list_fails_once_after_the_reconnection(request: httpx.Request) -> httpx.Response:
        nonlocal list_reads
        if request.url.path == "/api/cloud/jobs":
            list_reads += 1
            if list_reads == 2:
                return httpx.Response(502, json={"error": "bad_gateway", "message": "the API is starting"})
        return api(request)

    def job_fails_meanwhile() -> None:
        api.jobs[0] = {**api.jobs[0], "status": "failed", "is_terminal": True, "is_active": False}

    def five_seconds_later() -> None:
        clock.now += 5.0

    server = FakeServer([job_fails_meanwhile, DROP], [None, five_seconds_later, None])

    result = run(list_fails_once_after_the_reconnection, server, clock, "watch")

    assert result.exit_code == 0, result.output
    changes = [line.split(maxsplit=1)[1] for line in result.stdout.splitlines() if "→" in line]
    assert changes == ["job0001  queued → failed  acme/flux-lora-trainer"]
    assert list_reads == 3
    assert "could not read the job list again after the reconnection (502: the API is starting)" in result.stderr
