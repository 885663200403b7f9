"""`jobsync jobs|show|cancel|metrics|sync|logs|watch` through typer's CliRunner, over an httpx MockTransport and a
scripted WebSocket: what each command asks, what it prints, and every failure as one line, never a traceback."""

from __future__ import annotations

import json
import os
import re
import signal
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from typer.testing import CliRunner

from jobsync_cli.app import app
from jobsync_cli.watching import _new_lines

ENV = {"JOBSYNC_URL": "http://jobsync.test", "JOBSYNC_TOKEN": "op-token", "JOBSYNC_DEBUG": None, "COLUMNS": "200"}
NOW = datetime(2026, 11, 30, 8, 0, 0, tzinfo=timezone.utc)


def job(n: int, status: str = "completed", **fields: Any) -> dict[str, Any]:
    return {
        "job_id": f"job{n:04d}",
        "provider": "replicate",
        "status": status,
        "model": "acme/flux-lora-trainer",
        "config_name": None,
        "created_at": f"2026-11-29T{n // 60 % 24:02d}:{n % 60:02d}:00.000000Z",
        "started_at": None,
        "completed_at": None,
        "cost_usd": 0.5 if status == "completed" else None,
        "hardware_type": "gpu-h100",
        "price_per_second_usd": 0.001525,
        "error_message": None,
        "output_url": None,
        "is_active": status in ("pending", "uploading", "queued", "running"),
        "is_terminal": status in ("completed", "failed", "cancelled"),
        "duration_seconds": 600.0 if status == "completed" else None,
        **fields,
    }


class FakeApi:
    """The job routes of a jobsync API, with every request the command sent."""

    def __init__(self, jobs: list[dict[str, Any]] | None = None) -> None:
        self.jobs = jobs or []
        self.requests: list[httpx.Request] = []
        self.log_lines = [f"Step {n}/100 - loss: 0.5" for n in range(1, 11)]
        self.sync_answer = {"synced": 3, "updated": 1, "message": "Discovered 3 new jobs from Replicate"}
        self.sync_answer["history_complete"] = True  # type: ignore[assignment]

    def by_id(self, job_id: str) -> dict[str, Any] | None:
        return next((item for item in self.jobs if item["job_id"] == job_id), None)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != "Bearer op-token":
            return httpx.Response(401, json={"error": "unauthorized", "message": "send a valid token"})
        method, path = request.method, request.url.path
        query = {key: values[0] for key, values in parse_qs(request.url.query.decode()).items()}
        if (method, path) == ("GET", "/api/cloud/jobs"):
            return self._page(query)
        if (method, path) == ("GET", "/api/cloud/metrics"):
            counts = {status: sum(item["status"] == status for item in self.jobs) for status in ("running", "failed")}
            return httpx.Response(
                200,
                json={"job_count": len(self.jobs), "active_count": 1, "jobs_by_status": counts, "total_cost_usd": 2},
            )
        if (method, path) == ("POST", "/api/cloud/jobs/sync"):
            return httpx.Response(200, json=self.sync_answer)
        if (method, path) == ("GET", "/api/cloud/config"):
            return httpx.Response(200, json={"websocket_url": "ws://jobsync.test/live"})
        parts = path.removeprefix("/api/cloud/jobs/").split("/")
        found = self.by_id(parts[0])
        if found is None:
            return httpx.Response(404, json={"error": "job_not_found", "message": f"no job with id {parts[0]!r}"})
        action = parts[1] if len(parts) > 1 else ""
        if (method, action) == ("GET", ""):
            return httpx.Response(200, json={"job": found})
        if (method, action) == ("POST", "cancel"):
            if found["is_terminal"]:
                message = f"job {found['job_id']!r} has already ended ({found['status']}); there is nothing to cancel"
                return httpx.Response(409, json={"error": "job_already_ended", "message": message})
            found.update(status="cancelled", is_terminal=True, is_active=False)
            return httpx.Response(200, json={"job": found})
        if (method, action) == ("GET", "logs"):
            lines = self.log_lines[-int(query.get("tail", "200")) :]
            return httpx.Response(200, json={"job_id": found["job_id"], "lines": lines, "truncated": False})
        if (method, action) == ("GET", "inline-progress"):
            return httpx.Response(
                200, json={"job_id": found["job_id"], "stage": "Training", "last_log": "Step 45/100", "progress": 45.0}
            )
        return httpx.Response(404, json={"error": "not_found", "message": f"no route for {method} {path}"})

    def _page(self, query: dict[str, str]) -> httpx.Response:
        matching = [item for item in self.jobs if query.get("status") in (None, item["status"])]
        start = int(query.get("cursor", "0"))
        limit = int(query["limit"])
        chunk = matching[start : start + limit]
        more = start + limit < len(matching)
        return httpx.Response(200, json={"jobs": chunk, "next_cursor": str(start + limit) if more else None})

    def asked(self, method: str, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if (request.method, request.url.path) == (method, path)]


class FakeSocket:
    """A WebSocket whose messages are scripted; when they run out, the user presses Ctrl-C."""

    def __init__(self, messages: list[dict[str, Any] | None], log: list[str] | None = None) -> None:
        self.messages = list(messages)
        self.sent: list[dict[str, Any]] = []
        self.urls: list[str] = []
        self.closed = False
        self.log = log if log is not None else []

    def connect(self, url: str) -> FakeSocket:
        self.urls.append(url)
        self.log.append("connect")
        return self

    def send(self, message: str) -> None:
        self.sent.append(json.loads(message))
        self.log.append(f"send {json.loads(message)['action']}")

    def recv(self, timeout: float | None = None) -> str:
        if not self.messages:
            raise KeyboardInterrupt
        message = self.messages.pop(0)
        if message is None:
            raise TimeoutError
        return json.dumps(message)

    def close(self) -> None:
        self.closed = True


def run(api: Any, *args: str, socket: FakeSocket | None = None, env: dict[str, str | None] | None = None):
    obj: dict[str, Any] = {"transport": httpx.MockTransport(api), "now": NOW}
    if socket is not None:
        obj["connect"] = socket.connect
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})}, obj=obj)


def failed(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jobsync: ")
    return lines[0]


# ------------------------------------------------------------------------------ jobs


def test_jobs_prints_the_dashboards_columns_with_a_running_jobs_time_and_cost_so_far() -> None:
    running = job(2, "running", started_at="2026-11-30T07:50:00Z", config_name="portrait-v3")
    api = FakeApi([running, job(1, "failed", error_message="CUDA out of memory")])

    result = run(api, "jobs")

    assert result.exit_code == 0, result.output
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["STATUS", "MODEL", "JOB", "ID", "CREATED", "(UTC)", "DURATION", "COST", "DETAILS"]
    assert first.split()[:3] == ["running", "acme/flux-lora-trainer", "job0002"]
    assert "10m 00s" in first and "≈ $0.9150" in first and "portrait-v3" in first  # 600 s at $0.001525/s
    assert second.split()[0] == "failed" and "CUDA out of memory" in second
    assert parse_qs(api.requests[0].url.query.decode()) == {"limit": ["50"]}


def test_jobs_reads_page_after_page_with_the_cursor_up_to_the_limit() -> None:
    api = FakeApi([job(n) for n in range(260, 0, -1)])

    result = run(api, "jobs", "--limit", "250", "--json")

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == api.jobs[:250]  # the API's job objects, as they came
    asked = [parse_qs(request.url.query.decode()) for request in api.requests]
    assert asked == [
        {"limit": ["100"]},
        {"limit": ["100"], "cursor": ["100"]},
        {"limit": ["50"], "cursor": ["200"]},
    ]


def test_jobs_passes_its_filters_and_stops_at_the_last_page() -> None:
    api = FakeApi([job(1, "running"), job(2, "completed")])

    result = run(api, "jobs", "--status", "running", "--provider", "replicate", "--limit", "500", "--json")

    assert [item["job_id"] for item in json.loads(result.stdout)] == ["job0001"]
    assert [parse_qs(request.url.query.decode()) for request in api.requests] == [
        {"limit": ["100"], "status": ["running"], "provider": ["replicate"]}
    ]


def test_no_jobs_says_how_to_get_some() -> None:
    result = run(FakeApi([]), "jobs")
    assert result.exit_code == 0 and result.stdout == ""
    assert "jobsync sync" in result.stderr


def test_a_bad_status_or_limit_is_a_usage_error_before_any_request() -> None:
    api = FakeApi([])
    for args in (["jobs", "--status", "done"], ["jobs", "--limit", "0"], ["logs", "x", "--tail", "2001"]):
        result = run(api, *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert api.requests == []


# ------------------------------------------------------------------------------ show, cancel, metrics


def test_show_prints_the_facts_and_the_history() -> None:
    history = [{"status": "queued", "at": "2026-11-29T00:01:00.000000Z"}]
    history.append({"status": "completed", "at": "2026-11-29T00:11:00.000000Z"})
    api = FakeApi([job(1, history=history, output_url="https://example.test/weights.tar")])

    result = run(api, "show", "job0001")

    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "job0001" in text and "acme/flux-lora-trainer" in text and "gpu-h100 at $0.001525/s" in text
    assert "$0.5000" in text and "10m 00s" in text and "https://example.test/weights.tar" in text
    steps = [line.split() for line in text[text.index("\nhistory") :].splitlines()[3:]]
    assert steps == [["queued", "2026-11-29T00:01:00.000000Z"], ["completed", "2026-11-29T00:11:00.000000Z"]]
    assert json.loads(run(api, "show", "job0001", "--json").stdout) == api.jobs[0]


def test_cancel_says_what_happened_and_an_ended_job_is_one_line_with_the_409() -> None:
    api = FakeApi([job(1, "running")])

    cancelled = run(api, "cancel", "job0001")
    again = run(api, "cancel", "job0001")
    unknown = run(api, "cancel", "nope")

    assert cancelled.exit_code == 0 and "cancelled job job0001" in cancelled.stderr
    assert [request.method for request in api.asked("POST", "/api/cloud/jobs/job0001/cancel")] == ["POST", "POST"]
    assert failed(again) == ("jobsync: 409: job 'job0001' has already ended (cancelled); there is nothing to cancel")
    assert failed(unknown) == "jobsync: 404: no job with id 'nope'"


def test_a_job_id_is_sent_as_one_path_segment() -> None:
    api = FakeApi([])
    run(api, "show", "a/../b?c")
    assert api.requests[0].url.raw_path == b"/api/cloud/jobs/a%2F..%2Fb%3Fc"


def test_metrics_prints_the_counts_and_the_cost() -> None:
    result = run(FakeApi([job(1, "running"), job(2, "failed")]), "metrics")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines()}
    assert rows["jobs"] == "2" and rows["running"] == "1" and rows["failed"] == "1" and rows["completed"] == "0"
    assert "total cost" in result.stdout and "$2.0000" in result.stdout


# ------------------------------------------------------------------------------ sync


def test_sync_prints_the_answers_counts() -> None:
    socket = FakeSocket([])
    result = run(FakeApi(), "sync", socket=socket)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Discovered 3 new jobs from Replicate (3 new, 1 updated)\n"
    assert socket.closed


def test_sync_follows_a_background_import_until_it_is_done() -> None:
    api = FakeApi()
    api.sync_answer["history_complete"] = False  # type: ignore[assignment]
    socket = FakeSocket(
        [
            {"type": "job_status_changed", "job_id": "x", "status": "running"},
            {"type": "sync_progress", "imported": 300, "done": False},
            None,
            {"type": "sync_progress", "imported": 640, "done": True},
        ]
    )

    result = run(api, "sync", socket=socket)

    assert result.exit_code == 0, result.output
    assert "history imported: 640 jobs" in result.stderr
    assert socket.urls == ["ws://jobsync.test/live?token=op-token"]


def test_ctrl_c_while_following_an_import_leaves_it_running_in_the_background() -> None:
    api = FakeApi()
    api.sync_answer["history_complete"] = False  # type: ignore[assignment]
    socket = FakeSocket([{"type": "sync_progress", "imported": 120, "done": False}])  # then Ctrl-C

    result = run(api, "sync", socket=socket)

    assert result.exit_code == 0, result.output
    assert "the import goes on in the background (120 jobs so far)" in result.stderr


def test_sync_without_a_websocket_still_syncs() -> None:
    api = FakeApi()
    api.sync_answer["history_complete"] = False  # type: ignore[assignment]

    def refuse(url: str) -> FakeSocket:
        raise OSError("connection refused")

    result = CliRunner().invoke(app, ["sync"], env=ENV, obj={"transport": httpx.MockTransport(api), "connect": refuse})

    assert result.exit_code == 0, result.output
    assert "Discovered 3 new jobs" in result.stdout
    assert "going on without live messages" in result.stderr and "not all in yet" in result.stderr
    assert len(api.asked("POST", "/api/cloud/jobs/sync")) == 1


# ------------------------------------------------------------------------------ logs


def test_logs_prints_the_tail_newest_last() -> None:
    api = FakeApi([job(1, "completed")])
    result = run(api, "logs", "job0001", "--tail", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["Step 8/100 - loss: 0.5", "Step 9/100 - loss: 0.5", "Step 10/100 - loss: 0.5"]
    assert parse_qs(api.requests[0].url.query.decode()) == {"tail": ["3"]}


def test_follow_subscribes_before_reading_the_tail_and_prints_only_new_lines_until_the_end() -> None:
    api = FakeApi([job(1, "running")])
    order: list[str] = []
    socket = FakeSocket(
        [
            {
                "type": "job_log_lines",
                "job_id": "job0001",
                "lines": ["Step 9/100 - loss: 0.5", "Step 10/100 - loss: 0.5", "Step 11/100"],
            },
            {"type": "job_log_lines", "job_id": "other", "lines": ["not ours"]},
            None,
            {"type": "job_log_lines", "job_id": "job0001", "lines": ["Step 12/100"]},
            {"type": "job_status_changed", "job_id": "job0001", "status": "completed", "previous_status": "running"},
            {"type": "job_log_lines", "job_id": "job0001", "lines": ["after the end"]},
        ],
        log=order,
    )
    real_call = api.__call__

    def recording(request: httpx.Request) -> httpx.Response:
        order.append(f"{request.method} {request.url.path}")
        return real_call(request)

    result = run(recording, "logs", "job0001", "--tail", "2", "--follow", socket=socket)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Step 9/100 - loss: 0.5",
        "Step 10/100 - loss: 0.5",
        "Step 11/100",
        "Step 12/100",
    ]
    assert "job job0001 ended: completed" in result.stderr
    assert order.index("send follow") < order.index("GET /api/cloud/jobs/job0001/logs")
    assert socket.sent == [{"action": "follow", "job_id": "job0001"}] and socket.closed


def test_follow_on_an_ended_job_prints_its_tail_and_says_so() -> None:
    socket = FakeSocket([])
    result = run(FakeApi([job(1, "failed")]), "logs", "job0001", "-f", socket=socket)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 10
    assert "has ended (failed)" in result.stderr and socket.urls == []


def test_a_refused_follow_is_one_line() -> None:
    refusal = {"type": "error", "error": "too_many_follows", "message": "at most 10 follows per connection"}
    result = run(FakeApi([job(1, "running")]), "logs", "job0001", "-f", socket=FakeSocket([refusal]))
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        "jobsync: the WebSocket refused to follow job0001: at most 10 follows per connection"
    ]


def test_ctrl_c_ends_a_follow_quietly() -> None:
    result = run(FakeApi([job(1, "running")]), "logs", "job0001", "-f", socket=FakeSocket([None]))
    assert result.exit_code == 0 and "Traceback" not in result.output


class SignalledSocket(FakeSocket):
    """A socket whose read receives a real SIGINT half-way through (the user's Ctrl-C on a busy machine)."""

    def __init__(self) -> None:
        super().__init__([])
        self.reads_finished = 0

    def recv(self, timeout: float | None = None) -> str:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the rest of the read: a KeyboardInterrupt raised here leaves it half done
            pass
        self.reads_finished += 1
        raise TimeoutError


@pytest.mark.parametrize(
    "args", [("logs", "job0001", "-f"), ("watch",), ("sync",)], ids=["logs --follow", "watch", "sync"]
)
def test_ctrl_c_during_a_read_stops_listening_after_it_never_inside_it(args, plain_ctrl_c) -> None:
    socket = SignalledSocket()
    api = FakeApi([job(1, "running")])
    if args == ("sync",):
        api.sync_answer = {"synced": 1, "updated": 0, "message": "Discovered 1 new jobs", "history_complete": False}
    result = run(api, *args, socket=socket)
    assert result.exit_code == 0, result.output
    assert socket.reads_finished == 1 and socket.closed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is plain again afterwards


@pytest.mark.parametrize(
    ("shown", "pushed", "new"),
    [
        (["a", "b", "c"], ["b", "c", "d"], ["d"]),
        (["a", "b"], ["c"], ["c"]),
        (["a", "b"], ["a", "b"], []),
        ([], ["a"], ["a"]),
        (["x", "a"], ["a", "a", "b"], ["a", "b"]),
    ],
)
def test_pushed_lines_that_repeat_the_tails_end_are_not_printed_twice(shown, pushed, new) -> None:
    assert _new_lines(shown, pushed) == new


# ------------------------------------------------------------------------------ watch


def test_watch_prints_the_table_then_a_line_per_change_heard_until_ctrl_c() -> None:
    # CliRunner's output is no terminal: the table once, then one line per change (a terminal gets a Live table).
    running = job(2, "running", started_at="2026-11-30T07:59:00Z")
    api = FakeApi([running, job(1, "queued")])
    started = job(1, "running", started_at="2026-11-30T07:58:00Z")
    socket = FakeSocket(
        [
            None,
            {"type": "job_status_changed", "job_id": "job0001", "status": "running", "job": started},
            {"type": "sync_progress", "imported": 5, "done": False},
            {"type": "job_status_changed", "job_id": "job0002", "status": "failed", "previous_status": "running"},
        ]
    )

    def read_after_the_table(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/cloud/jobs":  # by the time the change is heard, the job has failed
            answer = api(request)
            api.jobs[0] = {**running, "status": "failed", "is_terminal": True, "is_active": False}
            return answer
        return api(request)

    result = run(read_after_the_table, "watch", socket=socket)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = {line.split()[2]: line for line in lines if line.startswith(("running", "queued"))}
    assert "Training" in rows["job0002"] and "45%" in rows["job0002"]  # its inline progress, read at the start
    assert "1m 00s" in rows["job0002"] and "≈ $0.0915" in rows["job0002"]  # 60 s so far at $0.001525/s
    assert rows["job0001"].split()[0] == "queued"
    changes = [line.split(maxsplit=1)[1] for line in lines[-2:]]
    assert changes == [
        "job0001  queued → running  acme/flux-lora-trainer",
        "job0002  running → failed  acme/flux-lora-trainer",
    ]
    assert "watching ws://jobsync.test/live (Ctrl-C stops)" in result.stderr
    assert len(api.asked("GET", "/api/cloud/jobs/job0002")) == 1  # the message had no job: read once
    assert socket.closed


def test_in_a_terminal_watch_redraws_its_live_table_on_each_change() -> None:
    api = FakeApi([job(2, "running", started_at="2026-11-30T07:59:00Z"), job(1, "queued")])
    failed_job = {**api.jobs[0], "status": "failed", "is_terminal": True, "is_active": False}
    socket = FakeSocket([{"type": "job_status_changed", "job_id": "job0002", "status": "failed", "job": failed_job}])
    obj = {"transport": httpx.MockTransport(api), "now": NOW, "connect": socket.connect, "terminal": True}

    result = CliRunner().invoke(app, ["watch"], env=ENV, obj=obj)

    assert result.exit_code == 0, result.output
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout)  # the redraws' cursor moves and colours
    frames = [line for line in screen.splitlines() if "job0002" in line]
    assert frames[0].split()[0] == "running" and "Training" in frames[0] and "45%" in frames[0]
    assert frames[-1].split()[0] == "failed" and "Training" not in frames[-1]
    assert "1 change heard" in screen


def test_the_live_table_shows_stage_progress_elapsed_and_cost_and_fits_the_width() -> None:
    from rich.console import Console

    from jobsync_cli.views import watch_table

    jobs = [job(2, "running", started_at="2026-11-30T07:58:00Z"), job(1, "completed")]
    progress = {"job0002": {"stage": "Saving checkpoint", "progress": 62.5}}
    for width, expected in ((200, ["Saving checkpoint", "62%", "━"]), (80, [])):
        console = Console(width=width, record=True, color_system=None)
        console.print(watch_table(jobs, progress, NOW, "2 jobs", width))
        text = console.export_text()
        running = next(line for line in text.splitlines() if line.startswith("running"))
        assert "job0002" in running and "2m 00s" in running and "≈ $0.1830" in running
        assert all(part in running for part in expected)
        assert max(len(line.rstrip()) for line in text.splitlines()) <= width


# ------------------------------------------------------------------------------ configuration and failures


def test_the_config_file_gives_the_url_and_token_and_the_variables_win(tmp_path) -> None:
    config = tmp_path / "jobsync" / "config.toml"
    config.parent.mkdir()
    config.write_text('url = "http://jobsync.test"\ntoken = "op-token"\n')
    from_file = run(
        FakeApi([]), "metrics", env={"XDG_CONFIG_HOME": str(tmp_path), "JOBSYNC_TOKEN": None, "JOBSYNC_URL": None}
    )
    assert from_file.exit_code == 0, from_file.output

    overridden = run(FakeApi([]), "metrics", env={"XDG_CONFIG_HOME": str(tmp_path), "JOBSYNC_TOKEN": "other"})
    assert failed(overridden) == "jobsync: 401: the API refused the token: check JOBSYNC_TOKEN"

    config.write_text("token = [")
    broken = run(FakeApi([]), "metrics", env={"XDG_CONFIG_HOME": str(tmp_path), "JOBSYNC_TOKEN": None})
    assert failed(broken, 2).startswith(f"jobsync: {config} is not valid TOML")


def test_without_a_token_the_command_says_where_to_put_one(tmp_path) -> None:
    result = run(FakeApi([]), "jobs", env={"JOBSYNC_TOKEN": None, "XDG_CONFIG_HOME": str(tmp_path)})
    line = failed(result, 2)
    assert line.startswith("jobsync: JOBSYNC_TOKEN is not set") and str(tmp_path / "jobsync" / "config.toml") in line


def test_an_unreachable_api_is_one_line(tmp_path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert failed(run(refuse, "jobs")) == (
        "jobsync: cannot reach http://jobsync.test: is make run up? (JOBSYNC_URL says where the API is)"
    )


def test_a_websocket_that_refuses_the_token_is_one_line() -> None:
    class Refused(Exception):
        response = type("Response", (), {"status_code": 401})()

    def refuse(url: str) -> FakeSocket:
        raise Refused("server rejected WebSocket connection: HTTP 401")

    result = CliRunner().invoke(
        app, ["watch"], env=ENV, obj={"transport": httpx.MockTransport(FakeApi([])), "connect": refuse}
    )
    assert failed(result) == "jobsync: 401: the WebSocket ws://jobsync.test/live refused the token: check JOBSYNC_TOKEN"


@pytest.mark.parametrize("command", ["jobs", "show", "logs", "cancel", "sync", "watch", "metrics"])
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env=ENV)
    assert result.exit_code == 0 and "Usage: jobsync " + command in " ".join(result.stdout.split())
