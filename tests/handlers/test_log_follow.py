"""Following a job's log lines over the WebSocket: follow/unfollow on $default, pushes from reads that happen anyway."""

from __future__ import annotations

import copy
import json

import pytest

from jobsync import wiring
from jobsync.services import final_logs
from tests.conftest import LambdaContext, load_event, load_handler
from tests.fakes.replicate import replicate_job
from tests.handlers.test_live_updates import connect, disconnect


@pytest.fixture
def posted(monkeypatch, tables):
    """Every message posted to a WebSocket connection, by connection."""
    from jobsync.push.websocket import pusher

    sent: dict[str, list[dict]] = {}

    def record(connection_id: str, data: bytes) -> None:
        sent.setdefault(connection_id, []).append(json.loads(data))

    monkeypatch.setattr(pusher(), "post", record)
    return sent, set()


def send(connection_id: str, message: object) -> tuple[int, dict]:
    event = copy.deepcopy(load_event("ws_default"))
    event["requestContext"]["connectionId"] = connection_id
    event["body"] = message if isinstance(message, str) else json.dumps(message)
    answer = load_handler("ws_default")(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def lines_pushed(sent: dict, connection_id: str) -> list[list[str]]:
    return [message["lines"] for message in sent.get(connection_id, []) if message["type"] == "job_log_lines"]


@pytest.fixture
def running(api, replicate):
    job = replicate.add(replicate_job("processing", logs="Loading\nStep 1/10"))
    api.call("sync_jobs")
    return job["id"]


@pytest.fixture
def fresh_reads(monkeypatch, aws_env):
    """Every read may ask the provider (no 5 s interval), so each test read is a fresh one."""
    monkeypatch.setenv("JOBSYNC_LOG_REFRESH_SECONDS", "0")
    wiring.reset()


def _gets(replicate, job_id):
    return replicate.requests[("GET", f"/predictions/{job_id}")]


def test_followers_get_the_new_lines_of_each_read_and_cost_the_provider_nothing(
    fresh_reads, api, replicate, running, posted
):
    sent, _ = posted
    for connection_id in ("a", "b", "c"):
        assert connect(connection_id) == 200
    assert send("a", {"action": "follow", "job_id": running}) == (200, {"type": "following", "job_id": running})
    assert send("b", {"action": "follow", "job_id": running})[0] == 200

    api.call("job_logs", path={"job_id": running})
    replicate.update(running, logs="Loading\nStep 1/10\nStep 2/10\nStep 3/10")
    api.call("inline_progress", path={"job_id": running})

    assert lines_pushed(sent, "a") == [["Loading", "Step 1/10"], ["Step 2/10", "Step 3/10"]]
    assert lines_pushed(sent, "b") == lines_pushed(sent, "a")
    assert lines_pushed(sent, "c") == []  # connected, not following
    assert _gets(replicate, running) == 2  # one per read, whatever the number of followers
    assert all(m == {"type": "job_log_lines", "job_id": running, "lines": m["lines"]} for m in sent["a"])


def test_a_read_with_nothing_new_pushes_nothing(fresh_reads, api, replicate, running, posted):
    sent, _ = posted
    connect("a")
    send("a", {"action": "follow", "job_id": running})
    api.call("job_logs", path={"job_id": running})
    api.call("job_logs", path={"job_id": running})
    assert lines_pushed(sent, "a") == [["Loading", "Step 1/10"]]


def test_unfollow_stops_the_lines(fresh_reads, api, replicate, running, posted):
    sent, _ = posted
    connect("a")
    send("a", {"action": "follow", "job_id": running})
    assert send("a", {"action": "unfollow", "job_id": running}) == (200, {"type": "unfollowed", "job_id": running})

    api.call("job_logs", path={"job_id": running})

    assert lines_pushed(sent, "a") == []
    assert wiring.connection_store().followers(running) == []


def test_the_final_tail_reaches_followers_through_the_tail_keeper(fresh_reads, api, replicate, running, posted):
    sent, _ = posted
    connect("a")
    send("a", {"action": "follow", "job_id": running})
    api.call("job_logs", path={"job_id": running})
    replicate.update(running, status="succeeded", logs="Loading\nStep 1/10\nStep 10/10\nSaved")

    final_logs.keep_final_tails([running])

    assert lines_pushed(sent, "a")[-1] == ["Step 10/10", "Saved"]


def test_a_connection_follows_at_most_ten_jobs(tables, api, replicate, posted):
    connect("a")
    jobs = [replicate.add(replicate_job("processing"))["id"] for _ in range(11)]
    api.call("sync_jobs")

    answers = [send("a", {"action": "follow", "job_id": job_id})[0] for job_id in jobs[:10]]
    again = send("a", {"action": "follow", "job_id": jobs[0]})  # following one again takes no new place
    status, refused = send("a", {"action": "follow", "job_id": jobs[10]})

    assert answers == [200] * 10 and again[0] == 200
    assert status == 429 and refused["type"] == "error" and refused["error"] == "too_many_follows"
    assert wiring.connection_store().followers(jobs[10]) == []
    send("a", {"action": "unfollow", "job_id": jobs[0]})
    assert send("a", {"action": "follow", "job_id": jobs[10]})[0] == 200


@pytest.mark.parametrize(
    ("message", "status", "error"),
    [
        ({"action": "follow", "job_id": "nosuchjob"}, 404, "job_not_found"),
        ({"action": "follow", "job_id": "bad id/#"}, 400, "invalid_input"),
        ({"action": "follow"}, 400, "invalid_input"),
        ({"action": "unfollow", "job_id": 5}, 400, "invalid_input"),
        ({"action": "dance"}, 400, "invalid_input"),
    ],
)
def test_bad_follow_messages_get_an_error_and_change_nothing(tables, api, replicate, message, status, error):
    connect("a")
    answer = send("a", message)
    assert answer[0] == status and answer[1]["type"] == "error" and answer[1]["error"] == error
    assert wiring.connection_store().follows("a") == set()


@pytest.mark.parametrize("history", ["never connected", "disconnected"])
def test_a_follow_from_a_connection_the_table_does_not_know_is_told_so(tables, api, replicate, running, history):
    if history == "disconnected":
        connect("a")
        disconnect("a")

    status, refused = send("a", {"action": "follow", "job_id": running})

    assert status == 410 and refused["type"] == "error" and refused["error"] == "unknown_connection"
    assert "reconnect" in refused["message"]
    assert wiring.connection_store().followers(running) == []


def test_a_closed_connection_follows_nothing_any_more(tables, api, replicate, running):
    connect("a")
    connect("b")
    send("a", {"action": "follow", "job_id": running})
    send("b", {"action": "follow", "job_id": running})

    assert disconnect("a") == 200

    assert wiring.connection_store().followers(running) == ["b"]


def test_the_poller_tick_reads_followed_jobs_so_lines_flow_without_a_dashboard(
    fresh_reads, api, replicate, running, posted
):
    from jobsync.services.polling import poll_tick

    sent, _ = posted
    connect("a")
    send("a", {"action": "follow", "job_id": running})
    fetched = _gets(replicate, running)

    poll_tick()

    assert lines_pushed(sent, "a") == [["Loading", "Step 1/10"]]
    assert _gets(replicate, running) == fetched + 1  # one read for the job, whatever the followers


def test_a_job_nobody_follows_any_more_leaves_the_tick_s_list(fresh_reads, api, replicate, running, posted):
    from jobsync.services.logs import read_followed_jobs

    connect("a")
    send("a", {"action": "follow", "job_id": running})
    send("a", {"action": "unfollow", "job_id": running})
    fetched = _gets(replicate, running)

    assert read_followed_jobs() == 0

    assert wiring.log_store().followed_jobs() == [] and _gets(replicate, running) == fetched
