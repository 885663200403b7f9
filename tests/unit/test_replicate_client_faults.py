"""The Replicate client meeting each kind of provider fault, over a fake HTTP transport (respx; no real sleeping).

Every fault is retried for a GET and, once retries are spent, raised as a
ProviderError (ProviderRateLimited for throttling): never ProviderNotFound,
which is what may end a job, and never anything else. The last test meets
the simulator's faults over a real socket.
"""

from __future__ import annotations

import gzip
import json
import threading
import time

import httpx
import pytest
import respx

from jobsync.providers.base import ProviderError, ProviderNotFound, ProviderRateLimited, iter_pages
from jobsync.providers.replicate import ReplicateClient
from tests.unit.test_replicate_client import BASE, MAX_RETRIES, make_settings, prediction

PAGE = {"next": None, "previous": None, "results": [prediction("p1"), prediction("p2")]}
PAGE_BYTES = json.dumps(PAGE).encode()


def _json_response(body: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "application/json", **headers})


# (fault, the wait it asks for: a number, or None for the client's own backoff)
FAULTS = {
    "429 with Retry-After": (httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "throttled"}), 2.0),
    "429 with ~Ns in its detail": (httpx.Response(429, json={"detail": "Your rate limit resets in ~3s."}), 3.0),
    "429 with nothing": (httpx.Response(429), None),
    "500": (httpx.Response(500, text="<html>oops</html>"), None),
    "502": (httpx.Response(502, json={"title": "Bad Gateway", "status": 502}), None),
    "503": (httpx.Response(503), None),
    "504": (httpx.Response(504), None),
    "connect timeout": (httpx.ConnectTimeout("timed out"), None),
    "read timeout": (httpx.ReadTimeout("timed out"), None),
    "write timeout": (httpx.WriteTimeout("timed out"), None),
    "pool timeout": (httpx.PoolTimeout("timed out"), None),
    "connection refused": (httpx.ConnectError("[Errno 111] Connection refused"), None),
    "connection reset": (httpx.ReadError("[Errno 104] Connection reset by peer"), None),
    "answer cut short on the wire": (
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        None,
    ),
    "truncated JSON": (_json_response(PAGE_BYTES[: len(PAGE_BYTES) // 2]), None),
    "empty body": (_json_response(b""), None),
    "gzip body cut short": (_json_response(gzip.compress(PAGE_BYTES)[:40], **{"content-encoding": "gzip"}), None),
}
OPERATIONS = {
    "list page": ("/predictions", PAGE, lambda client: [job.job_id for job in client.list_page("prediction").jobs]),
    "one job": ("/predictions/p1", prediction("p1"), lambda client: client.get_job("p1").job_id),
    "account": ("/account", {"username": "alice"}, lambda client: client.account().username),
}
EXPECTED = {"list page": ["p1", "p2"], "one job": "p1", "account": "alice"}


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_called=False)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(router, sleeps):
    replicate = ReplicateClient(make_settings(), transport=httpx.MockTransport(router.handler), sleep=sleeps.append)
    yield replicate
    replicate.close()


def _fault(name: str) -> httpx.Response | Exception:
    fault, _ = FAULTS[name]
    if isinstance(fault, httpx.Response):  # a fresh one each time: a response's body is read once
        return httpx.Response(fault.status_code, headers=fault.headers, content=fault.content)
    return fault


def _answer(name: str) -> httpx.Response:
    """The fault as a side effect function's answer: a response returned, an error raised."""
    fault = _fault(name)
    if isinstance(fault, Exception):
        raise fault
    return fault


def _assert_waited(sleeps: list[float], asked: float | None, count: int) -> None:
    assert len(sleeps) == count
    for attempt, wait in enumerate(sleeps):
        if asked is not None:
            assert wait == asked
        else:  # 0.1 s x 2^n with jitter
            assert 0.1 * 2**attempt / 2 <= wait <= 0.1 * 2**attempt


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_is_retried_and_the_next_answer_counts(client, router, sleeps, fault, operation):
    path, body, call = OPERATIONS[operation]
    route = router.get(path).mock(side_effect=[_fault(fault), httpx.Response(200, json=body)])

    assert call(client) == EXPECTED[operation]

    assert route.call_count == 2
    _assert_waited(sleeps, FAULTS[fault][1], 1)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_that_lasts_is_a_provider_error_never_not_found(client, router, sleeps, fault):
    route = router.get("/predictions/p1").mock(side_effect=lambda request: _answer(fault))

    with pytest.raises(ProviderError) as caught:
        client.get_job("p1")

    assert not isinstance(caught.value, ProviderNotFound)
    assert isinstance(caught.value, ProviderRateLimited) == fault.startswith("429")
    assert route.call_count == MAX_RETRIES + 1
    _assert_waited(sleeps, FAULTS[fault][1], MAX_RETRIES)
    assert "r8_" not in str(caught.value)


def test_a_truncated_body_that_lasts_says_what_went_wrong(client, router):
    router.get("/predictions").mock(side_effect=lambda request: _answer("truncated JSON"))
    with pytest.raises(ProviderError, match=r"GET /v1/predictions: .*not complete JSON") as caught:
        client.list_page("prediction")
    assert caught.value.status == 200


def test_json_that_is_whole_but_not_an_object_is_not_retried(client, router, sleeps):
    route = router.get("/account").respond(json=["not", "an", "object"])
    with pytest.raises(ProviderError, match="not an object"):
        client.account()
    assert route.call_count == 1 and sleeps == []


def test_a_walk_over_pages_meeting_a_different_fault_each_reads_every_page(client, router, sleeps):
    def page(number: int) -> dict:
        more = f"{BASE}/predictions?cursor={number + 1}" if number < 3 else None
        return {"next": more, "previous": None, "results": [prediction(f"p{number}")]}

    faults = {None: "truncated JSON", "2": "connection reset", "3": "429 with Retry-After"}
    seen: dict[str | None, int] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        seen[cursor] = seen.get(cursor, 0) + 1
        return _answer(faults[cursor]) if seen[cursor] == 1 else httpx.Response(200, json=page(int(cursor or 1)))

    router.get("/predictions").mock(side_effect=answer)

    pages = list(iter_pages(client, "prediction"))

    assert [job.job_id for page in pages for job in page.jobs] == ["p1", "p2", "p3"]
    assert seen == {None: 2, "2": 2, "3": 2} and len(sleeps) == 3


@pytest.mark.parametrize("fault", ["503", "read timeout", "connection reset", "429 with nothing"])
def test_a_cancel_meeting_a_fault_is_not_retried(client, router, sleeps, fault):
    route = router.post("/predictions/p1/cancel").mock(side_effect=[_fault(fault), httpx.Response(200)])
    with pytest.raises(ProviderError) as caught:
        client.cancel("p1")
    assert not isinstance(caught.value, ProviderNotFound)
    assert route.call_count == 1 and sleeps == []


def test_a_cancel_whose_answer_is_cut_short_reports_no_job(client, router):
    router.post("/predictions/p1/cancel").mock(return_value=_fault("truncated JSON"))
    assert client.cancel("p1") is None


# --------------------------------------------------------------------------- the simulator over a real socket


@pytest.fixture
def simulator():
    """The simulator under uvicorn on a free loopback port, with no faults until a test injects them."""
    import uvicorn

    from local.replicate_simulator import FaultPlan, SimulatedReplicate, create_app

    sim = SimulatedReplicate(token="r8_sim", history_size=30, faults=FaultPlan())
    server = uvicorn.Server(uvicorn.Config(create_app(sim), host="127.0.0.1", port=0, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)  # waits for the server to start; no result depends on timing
    port = server.servers[0].sockets[0].getsockname()[1]
    yield sim, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def test_the_client_gets_past_every_fault_of_the_simulator(simulator):
    from local.replicate_simulator import FAULT_KINDS

    sim, base_url = simulator
    sleeps: list[float] = []
    settings = make_settings(replicate_api_base_url=base_url, replicate_api_token="r8_sim", provider_max_retries=1)
    kinds = [kind for kind in FAULT_KINDS if kind != "timeout"]  # a timeout is a ReadTimeout, met above
    with ReplicateClient(settings, sleep=sleeps.append) as client:
        expected = [job.job_id for page in iter_pages(client, "prediction") for job in page.jobs]
        for kind in kinds:
            sim.inject_faults(kind)
            assert [job.job_id for page in iter_pages(client, "prediction") for job in page.jobs] == expected, kind
            sim.inject_faults(kind, count=2)
            with pytest.raises(ProviderError) as caught:
                client.list_page("prediction")
            assert not isinstance(caught.value, ProviderNotFound), kind
    assert sim.faults_met == {kind: 3 for kind in kinds}
    assert len(sleeps) == 2 * len(kinds)
