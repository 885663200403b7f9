"""A fan-out too large for one broadcaster invocation is split into shares handed to the broadcaster itself."""

from __future__ import annotations

import copy
import json

import pytest

from jobsync import background, wiring
from jobsync.config import get_settings
from jobsync.services.broadcast import shares_of
from jobsync.store.connections import Connection
from tests.conftest import LambdaContext, load_event, load_handler
from tests.handlers.test_live_updates import connect, open_ids, opened_long_ago, posted  # noqa: F401 - `posted` is a fixture

BROADCASTER = "jobsync-test-broadcaster"
SOCKETS = 10
POSTS_PER_INVOCATION = 3


@pytest.fixture
def sockets(monkeypatch, tables, request):
    """SOCKETS open connections (two per IP, under the cap), a broadcaster that may post 3 times an
    invocation, and every post recorded (`posted`)."""
    monkeypatch.setenv("JOBSYNC_BROADCASTER_FUNCTION", BROADCASTER)
    monkeypatch.setenv("JOBSYNC_BROADCAST_POSTS_PER_INVOCATION", str(POSTS_PER_INVOCATION))
    wiring.reset()  # before `posted` replaces the pusher's send
    sent, gone = request.getfixturevalue("posted")
    ids = [f"conn{number:02d}=" for number in range(SOCKETS)]
    for number, connection_id in enumerate(ids):
        assert connect(connection_id, ip=f"203.0.113.{number // 2}") == 200
    return ids, sent, gone


def one_change() -> dict:
    event = copy.deepcopy(load_event("broadcaster"))
    event["Records"] = event["Records"][:1]
    return event


def broadcaster(event: dict) -> dict:
    return load_handler("broadcaster")(event, LambdaContext(function_name=BROADCASTER))


def test_a_fan_out_over_the_share_size_is_split_and_each_connection_gets_the_message_once(sockets, handed_off):
    ids, sent, _ = sockets

    first = broadcaster(one_change())

    assert first["sent"] == POSTS_PER_INVOCATION  # its own share
    shares = handed_off.to(BROADCASTER)
    assert [len(share["fan_out"]["connections"]) for share in shares] == [3, 3, 1]
    assert handed_off.drain(BROADCASTER, "broadcaster") == 3  # the shares hand nothing off again
    assert sorted(sent) == sorted(ids)
    assert all(len(messages) == 1 and messages[0]["type"] == "job_status_changed" for messages in sent.values())
    assert len({json.dumps(messages[0], sort_keys=True) for messages in sent.values()}) == 1  # the same message


def test_a_share_lambda_refuses_is_posted_by_the_invocation_itself(sockets, handed_off):
    ids, sent, _ = sockets
    handed_off.refusing = True

    result = broadcaster(one_change())

    assert result["sent"] == SOCKETS
    assert sorted(sent) == sorted(ids) and all(len(messages) == 1 for messages in sent.values())


def test_a_connection_gone_in_a_handed_off_share_is_removed(sockets, handed_off):
    ids, sent, gone = sockets
    opened_long_ago(ids[-1])
    gone.add(ids[-1])  # in the last share

    broadcaster(one_change())
    handed_off.drain(BROADCASTER, "broadcaster")

    assert open_ids() == set(ids[:-1])
    assert sorted(sent) == sorted(ids[:-1]) and all(len(messages) == 1 for messages in sent.values())


def test_a_fan_out_within_the_share_size_is_not_split(sockets, handed_off, monkeypatch):
    ids, sent, _ = sockets
    monkeypatch.setenv("JOBSYNC_BROADCAST_POSTS_PER_INVOCATION", str(SOCKETS))
    get_settings.cache_clear()

    assert broadcaster(one_change())["sent"] == SOCKETS
    assert handed_off.to(BROADCASTER) == [] and sorted(sent) == sorted(ids)


@pytest.mark.parametrize(
    ("messages", "shares_expected"),
    [
        (20, 40),  # 20 messages of 3 KB: 500 connections a share (10,000 posts)
        (1, 4),  # one message: 10,000 connections would not fit in 256 KB (about 37 bytes each)
    ],
)
def test_shares_count_posts_and_fit_in_an_async_event(monkeypatch, aws_env, messages, shares_expected):
    monkeypatch.setenv("JOBSYNC_BROADCAST_POSTS_PER_INVOCATION", "10000")
    wiring.reset()
    connections = [Connection(f"{number:015d}=", f"2001:db8::{number:x}") for number in range(20_000)]
    bodies = [json.dumps({"type": "job_status_changed", "pad": 'x"y' * 500}).encode()] * messages

    shares = shares_of(bodies, connections)

    assert len(shares) == shares_expected
    assert [c for share in shares for c in share] == connections  # each connection in one share, in order
    assert all(len(share) * len(bodies) <= 10_000 for share in shares)
    texts = [body.decode() for body in bodies]
    for share in shares:
        payload = {"fan_out": {"messages": texts, "connections": [[c.connection_id, c.source_ip] for c in share]}}
        background.encode(payload)  # raises past Lambda's 256 KB
