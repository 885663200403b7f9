"""WebSocket connections, the per-IP cap, and broadcasting status changes read from the real stream."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from urllib.parse import unquote

import boto3
import pytest
from botocore.config import Config

from jobsync import wiring
from jobsync.push.websocket import pusher
from local.streams import StreamReader
from tests.conftest import API_TOKEN, REGION, LambdaContext, load_event, load_handler
from tests.fakes.replicate import replicate_job
from tests.handlers.test_refresh_and_poller import scheduled_now


def connect(connection_id: str, ip: str = "203.0.113.7", token: str | None = API_TOKEN) -> int:
    event = copy.deepcopy(load_event("ws_connect"))
    event["requestContext"]["connectionId"] = connection_id
    event["requestContext"]["identity"]["sourceIp"] = ip
    event["queryStringParameters"] = {"token": token} if token else None
    return load_handler("ws_connect")(event, LambdaContext())["statusCode"]


def disconnect(connection_id: str) -> int:
    event = copy.deepcopy(load_event("ws_disconnect"))
    event["requestContext"]["connectionId"] = connection_id
    return load_handler("ws_disconnect")(event, LambdaContext())["statusCode"]


def open_ids() -> set[str]:
    return {connection.connection_id for connection in wiring.connection_store().all()}


def opened_long_ago(connection_id: str) -> None:
    """The connection's row as if its $connect had run an hour ago: API Gateway has established it by now."""
    connections = boto3.resource("dynamodb", region_name=REGION).Table("connections")
    connections.update_item(
        Key={"connection_id": connection_id},
        UpdateExpression="SET connected_at = connected_at - :hour",
        ExpressionAttributeValues={":hour": 3600},
    )


@pytest.fixture
def stream(tables):
    # botocore would address moto by an account-specific streams host that moto does not serve
    streams = boto3.client("dynamodbstreams", region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))
    return StreamReader.for_table(boto3.client("dynamodb", region_name=REGION), streams, "jobs")


@pytest.fixture
def posted(monkeypatch, tables):
    """Every post to the management API, by connection; ids in `gone` answer 410 like API Gateway.

    The pusher's signed request is what would go over the wire: its URL names the connection."""
    sent: dict[str, list[dict]] = {}
    gone: set[str] = set()

    def send(request):
        assert request.method == "POST" and request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")
        connection_id = unquote(request.url.rpartition("/@connections/")[2])
        if connection_id in gone:
            return SimpleNamespace(status_code=410)
        sent.setdefault(connection_id, []).append(json.loads(request.body))
        return SimpleNamespace(status_code=200)

    monkeypatch.setattr(pusher(), "_send", send)
    sent_and_gone = (sent, gone)
    return sent_and_gone


def broadcast(stream) -> dict:
    return load_handler("broadcaster")({"Records": stream.read()}, LambdaContext())


def test_connect_needs_a_valid_token(tables):
    assert connect("c1", token=None) == 401
    assert connect("c2", token="wrong") == 401
    assert connect("c3") == 200
    assert open_ids() == {"c3"}


def test_the_sixth_connection_from_one_ip_is_refused_and_a_closed_one_frees_its_slot(tables):
    assert [connect(f"c{n}") for n in range(5)] == [200] * 5
    assert connect("c5") == 429
    assert connect("other-ip", ip="198.51.100.1") == 200
    assert disconnect("c0") == 200
    assert open_ids() == {"c1", "c2", "c3", "c4", "other-ip"}  # its connection row is gone
    assert disconnect("c0") == 200  # a repeated $disconnect frees nothing twice
    assert open_ids() == {"c1", "c2", "c3", "c4", "other-ip"}
    assert connect("c6") == 200
    assert connect("c7") == 429


def test_the_cap_is_configurable(tables, monkeypatch):
    monkeypatch.setenv("JOBSYNC_MAX_CONNECTIONS_PER_IP", "2")
    wiring.reset()
    assert [connect(f"c{n}") for n in range(3)] == [200, 200, 429]


def test_a_connection_whose_disconnect_never_came_stops_holding_a_slot(tables):
    for n in range(5):
        connect(f"c{n}")
    connections = boto3.resource("dynamodb", region_name=REGION).Table("connections")
    connections.update_item(
        Key={"connection_id": "c0"}, UpdateExpression="SET expires_at = :past", ExpressionAttributeValues={":past": 1}
    )
    assert connect("c5") == 200


def test_every_status_change_reaches_every_client_and_gone_ones_are_removed(api, replicate, stream, posted):
    sent, gone = posted
    for connection_id in ("a", "b", "c"):
        connect(connection_id)
    opened_long_ago("b")
    gone.add("b")
    job = replicate.add(replicate_job("starting", job_id="live1"))
    api.call("sync_jobs")
    replicate.update(job["id"], status="processing")
    api.call("list_jobs", query={"sync_active": "true"})

    result = broadcast(stream)

    assert result == {"changes": 2, "sent": 2, "gone": 1, "failed": 0}
    for connection_id in ("a", "c"):
        assert [(m["type"], m["job_id"], m["status"], m["previous_status"]) for m in sent[connection_id]] == [
            ("job_status_changed", "live1", "queued", None),
            ("job_status_changed", "live1", "running", "queued"),
        ]
    assert open_ids() == {"a", "c"}
    assert connect("b2") == 200  # the gone connection's slot was freed with it


def test_a_connection_whose_connect_just_ran_is_kept_when_a_post_finds_it_not_there_yet(api, replicate, stream, posted):
    """$connect writes the row before API Gateway has established the connection, and a post in between is
    answered 410: the connection is kept (its first follow must not find it gone); once it is older, a 410 removes
    it."""
    sent, gone = posted
    connect("establishing")
    gone.add("establishing")
    replicate.add(replicate_job("starting", job_id="early"))
    api.call("sync_jobs")

    assert broadcast(stream)["gone"] == 1
    assert open_ids() == {"establishing"}

    opened_long_ago("establishing")
    replicate.add(replicate_job("starting", job_id="later"))
    api.call("sync_jobs")

    assert broadcast(stream)["gone"] == 1
    assert open_ids() == set()
    assert sent == {}


def test_a_change_found_by_the_poller_is_broadcast_too(api, replicate, stream, posted, poller_clock):
    sent, _ = posted
    connect("a")
    job = replicate.add(replicate_job("processing", job_id="polled"))
    api.call("sync_jobs")
    broadcast(stream)
    sent.clear()
    replicate.update(job["id"], status="failed", error="CUDA out of memory")

    load_handler("poller")(scheduled_now(), LambdaContext(remaining_ms=75_000))

    assert broadcast(stream)["changes"] == 1
    assert [(m["status"], m["previous_status"], m["job"]["error_message"]) for m in sent["a"]] == [
        ("failed", "running", "CUDA out of memory")
    ]


def test_writes_that_do_not_change_the_status_are_not_broadcast(api, replicate, stream, posted, monkeypatch):
    sent, _ = posted
    monkeypatch.setenv("JOBSYNC_LOG_REFRESH_SECONDS", "0")
    wiring.reset()
    connect("a")
    job = replicate.add(replicate_job("processing", job_id="quiet", logs="Step 1/10"))
    api.call("sync_jobs")
    broadcast(stream)
    sent.clear()
    replicate.update(job["id"], metrics={"predict_time": 3.0}, logs="Step 2/10")
    api.call("inline_progress", path={"job_id": job["id"]})
    api.call("sync_jobs")
    assert broadcast(stream)["changes"] == 0 and sent == {}


def test_the_sample_stream_event_broadcasts_its_status_change(tables, posted):
    sent, _ = posted
    connect("a")
    result = load_handler("broadcaster")(load_event("broadcaster"), LambdaContext())
    assert result["sent"] == 1
    assert any(m["status"] == "running" and m["previous_status"] == "queued" for m in sent["a"])


def test_ping_gets_a_pong_and_anything_else_a_400(tables):
    event = load_event("ws_default")
    assert json.loads(load_handler("ws_default")(event, LambdaContext())["body"]) == {"type": "pong"}
    event["body"] = "hello"
    assert load_handler("ws_default")(event, LambdaContext())["statusCode"] == 400
