"""ReplicateClient against a mocked Replicate at the HTTP level (respx; no network, no real sleeping).

The mapping of job objects on their own is tested in test_replicate_mapping.py.
"""

from __future__ import annotations

import httpx
import pytest
import respx

from jobsync.config import Settings, get_settings
from jobsync.domain.status import JobStatus
from jobsync.providers.base import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnavailable,
    iter_pages,
)
from jobsync.providers.registry import PROVIDERS, UnknownProvider, provider_client
from jobsync.providers.replicate import ReplicateClient

TOKEN = "r8_Sup3rSecretTokenValue0123456789"
BASE = "https://api.replicate.com/v1"
MAX_RETRIES = 3


def make_settings(**overrides) -> Settings:
    values = {
        "replicate_api_token": TOKEN,
        "replicate_api_base_url": BASE,
        "provider_max_retries": MAX_RETRIES,
        "provider_max_retry_wait_seconds": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_called=False)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(router: respx.Router, sleeps: list[float], **overrides) -> ReplicateClient:
    transport = httpx.MockTransport(router.handler)
    return ReplicateClient(make_settings(**overrides), transport=transport, sleep=sleeps.append)


@pytest.fixture
def client(router, sleeps):
    replicate = make_client(router, sleeps)
    yield replicate
    replicate.close()


def prediction(job_id: str = "p1", **extra) -> dict:
    item = {
        "id": job_id,
        "model": "owner/flux-trainer",
        "version": "abc123",
        "status": "processing",
        "input": {"config_name": "lora-v1", "hf_token": "hf_should_never_be_kept"},
        "output": None,
        "logs": "Step 10/100",
        "error": None,
        "created_at": "2024-09-10T05:10:35.195332906Z",
        "started_at": "2024-09-10T05:10:36.5Z",
        "completed_at": None,
        "metrics": {},
        "urls": {"get": f"{BASE}/predictions/{job_id}"},
    }
    item.update(extra)
    return item


def problem(status: int, detail: str, title: str = "Error") -> httpx.Response:
    return httpx.Response(
        status,
        json={"title": title, "detail": detail, "status": status},
        headers={"content-type": "application/problem+json"},
    )


# --------------------------------------------------------------------------- mapping over HTTP


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("starting", JobStatus.QUEUED),
        ("processing", JobStatus.RUNNING),
        ("succeeded", JobStatus.COMPLETED),
        ("failed", JobStatus.FAILED),
        ("canceled", JobStatus.CANCELLED),
        ("aborted", JobStatus.CANCELLED),
        ("booting", None),
        ("", None),
    ],
)
def test_status_mapping_over_http(client, router, raw, expected):
    router.get("/predictions/p1").respond(json=prediction(status=raw))
    observation = client.get_job("p1")
    assert observation.status == expected
    assert observation.provider_status == raw
    assert observation.provider == "replicate"


def test_timestamps_are_kept_verbatim(client, router):
    stamps = {
        "created_at": "2024-09-10T05:10:35.195332906Z",
        "started_at": "2024-09-10T05:10:36.123456Z",
        "completed_at": "2024-09-10T05:20:00Z",
    }
    router.get("/predictions/p1").respond(json=prediction(status="succeeded", **stamps))
    observation = client.get_job("p1")
    assert {name: getattr(observation, name) for name in stamps} == stamps


def test_training_output_weights_over_http(client, router):
    training = prediction(
        "t1",
        status="succeeded",
        output={"version": "me/lora:123", "weights": "https://replicate.delivery/w.tar"},
        urls={"get": f"{BASE}/trainings/t1"},
    )
    route = router.get("/trainings/t1").respond(json=training)
    observation = client.get_job("t1", kind="training")
    assert route.call_count == 1
    assert observation.kind == "training"
    assert observation.output_url == "https://replicate.delivery/w.tar"


def test_lone_surrogates_in_logs_are_sanitised(client, router):
    body = '{"id": "p1", "status": "processing", "logs": "step 1\\ud800 step 2", "error": "bad \\udfff"}'
    router.get("/predictions/p1").respond(content=body.encode(), headers={"content-type": "application/json"})
    observation = client.get_job("p1")
    for value in (observation.logs, observation.error_message):
        value.encode("utf-8")  # would raise on a lone surrogate
    assert observation.logs.startswith("step 1") and observation.logs.endswith("step 2")


# --------------------------------------------------------------------------- lists and pages


def test_pagination_follows_next_across_three_pages(client, router):
    pages = {
        None: {"results": [prediction("p1"), prediction("p2")], "next": f"{BASE}/predictions?cursor=c2"},
        "c2": {"results": [prediction("p3")], "next": f"{BASE}/predictions?cursor=c3", "previous": BASE},
        "c3": {"results": [prediction("p4")], "next": None},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    route = router.get("/predictions").mock(side_effect=answer)
    got = list(iter_pages(client, "prediction"))
    assert [[job.job_id for job in page.jobs] for page in got] == [["p1", "p2"], ["p3"], ["p4"]]
    assert got[-1].next_page is None
    assert [call.request.url.params.get("cursor") for call in route.calls] == [None, "c2", "c3"]
    assert all(job.kind == "prediction" for page in got for job in page.jobs)


def test_trainings_list_uses_trainings_path(client, router):
    route = router.get("/trainings").respond(json={"results": [prediction("t1")], "next": None})
    page = client.list_page("training")
    assert route.call_count == 1
    assert [job.kind for job in page.jobs] == ["training"]


@pytest.mark.parametrize(
    "foreign",
    [
        "https://evil.example/v1/predictions?cursor=x",
        "https://api.replicate.com.evil.example/v1/predictions?cursor=x",
        "http://api.replicate.com/v1/predictions?cursor=x",
        "https://api.replicate.com:8443/v1/predictions?cursor=x",
        "https://user:pw@api.replicate.com/v1/predictions?cursor=x",
        "https://api.replicate.com/v2/predictions?cursor=x",
        "https://api.replicate.com/v1/predictionsX?cursor=x",
        "https://api.replicate.com/v1/trainings?cursor=x",
        "https://api.replicate.com/v1/predictions/%2e%2e/%2e%2e/account",
        "/v1/predictions?cursor=x",
        "not a url at all",
    ],
)
def test_refuses_a_foreign_next_url(client, router, foreign):
    route = router.route().respond(json={"results": [], "next": None})
    with pytest.raises(ProviderError) as caught:
        client.list_page("prediction", foreign)
    assert route.call_count == 0
    assert TOKEN not in str(caught.value)


def test_accepts_same_origin_next_with_explicit_default_port(client, router):
    route = router.get("/predictions").respond(json={"results": [], "next": None})
    client.list_page("prediction", "https://API.replicate.com:443/v1/predictions?cursor=c2")
    assert route.call_count == 1


def test_junk_list_items_are_skipped(client, router):
    results = [None, "p0", 3, {}, {"id": 5}, prediction("p1"), ["x"], prediction("p2")]
    router.get("/predictions").respond(json={"results": results, "next": None})
    page = client.list_page("prediction")
    assert [job.job_id for job in page.jobs] == ["p1", "p2"]


@pytest.mark.parametrize("body", [{"next": None}, {"results": "nope"}, ["a"], "text"])
def test_list_without_results_is_a_provider_error(client, router, body):
    router.get("/predictions").respond(json=body)
    with pytest.raises(ProviderError):
        client.list_page("prediction")


def test_unknown_kind_is_refused(client):
    with pytest.raises(ProviderError):
        client.list_page("deployment")


# --------------------------------------------------------------------------- retries


def test_429_honours_retry_after_then_succeeds(client, router, sleeps):
    route = router.get("/account").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "Request was throttled."}),
            httpx.Response(429, headers={"Retry-After": "0.5"}),
            httpx.Response(200, json={"username": "alice"}),
        ]
    )
    assert client.account().username == "alice"
    assert route.call_count == 3
    assert sleeps == [2.0, 0.5]


def test_429_parses_wait_from_detail(client, router, sleeps):
    route = router.get("/account").mock(
        side_effect=[
            problem(429, "Request was throttled. Your rate limit resets in ~3s."),
            httpx.Response(200, json={"username": "alice"}),
        ]
    )
    assert client.account().username == "alice"
    assert route.call_count == 2
    assert sleeps == [3.0]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(429, headers={"Retry-After": "60"}),
        problem(429, "Request was throttled. Your rate limit resets in ~60s."),
    ],
)
def test_429_with_too_long_wait_raises_without_sleeping(client, router, sleeps, response):
    route = router.get("/account").mock(return_value=response)
    with pytest.raises(ProviderRateLimited) as caught:
        client.account()
    assert caught.value.retry_after == 60.0
    assert caught.value.status == 429
    assert route.call_count == 1
    assert sleeps == []


def test_429_exhausted_raises_rate_limited(client, router, sleeps):
    route = router.get("/account").mock(return_value=httpx.Response(429, headers={"Retry-After": "1"}))
    with pytest.raises(ProviderRateLimited):
        client.account()
    assert route.call_count == MAX_RETRIES + 1
    assert sleeps == [1.0] * MAX_RETRIES


def test_500_then_success(client, router, sleeps):
    route = router.get("/predictions/p1").mock(
        side_effect=[
            httpx.Response(500, text="oops"),
            httpx.Response(200, json=prediction()),
        ]
    )
    assert client.get_job("p1").job_id == "p1"
    assert route.call_count == 2
    assert len(sleeps) == 1 and 0.05 <= sleeps[0] <= 0.1


def test_5xx_exhausted_raises_provider_error_with_backoff(client, router, sleeps):
    route = router.get("/predictions/p1").mock(
        side_effect=[
            httpx.Response(502),
            httpx.Response(503),
            httpx.Response(504),
            httpx.Response(500, text="<html>down</html>"),
        ]
    )
    with pytest.raises(ProviderError) as caught:
        client.get_job("p1")
    assert not isinstance(caught.value, ProviderRateLimited)
    assert caught.value.status == 500
    assert route.call_count == MAX_RETRIES + 1
    # 0.1 s x 2^n with jitter: each wait lies in [ceiling / 2, ceiling].
    for attempt, wait in enumerate(sleeps):
        ceiling = 0.1 * 2**attempt
        assert ceiling / 2 <= wait <= ceiling
    assert len(sleeps) == MAX_RETRIES


def test_no_retries_when_configured_off(router, sleeps):
    replicate = make_client(router, sleeps, provider_max_retries=0)
    route = router.get("/account").respond(503)
    with pytest.raises(ProviderError):
        replicate.account()
    assert route.call_count == 1 and sleeps == []


def test_timeout_is_retried_then_succeeds(client, router, sleeps):
    route = router.get("/account").mock(
        side_effect=[
            httpx.ReadTimeout("read timed out"),
            httpx.ConnectError("connection refused"),
            httpx.Response(200, json={"username": "alice"}),
        ]
    )
    assert client.account().username == "alice"
    assert route.call_count == 3
    assert len(sleeps) == 2


def test_transport_errors_exhausted_raise_provider_error(client, router, sleeps):
    route = router.get("/account").mock(side_effect=httpx.ReadTimeout("read timed out"))
    with pytest.raises(ProviderError) as caught:
        client.account()
    assert type(caught.value) is ProviderUnavailable  # a passing fault, neither "not found" nor a refusal
    assert route.call_count == MAX_RETRIES + 1


@pytest.mark.parametrize("failure", [httpx.Response(500), httpx.Response(503), httpx.ReadTimeout("slow")])
def test_cancel_post_is_never_retried(client, router, sleeps, failure):
    route = router.post("/predictions/p1/cancel").mock(side_effect=[failure, httpx.Response(200, json=prediction())])
    with pytest.raises(ProviderError):
        client.cancel("p1")
    assert route.call_count == 1
    assert sleeps == []


def test_cancel_returns_the_job(client, router):
    route = router.post("/trainings/t1/cancel").respond(json=prediction("t1", status="canceled"))
    observation = client.cancel("t1", kind="training")
    assert route.call_count == 1
    assert observation.status == JobStatus.CANCELLED


# --------------------------------------------------------------------------- errors


def test_401_on_account_is_auth_error_with_detail(client, router):
    detail = "You did not pass a valid authentication token"
    router.get("/account").mock(return_value=problem(401, detail, "Unauthenticated"))
    with pytest.raises(ProviderAuthError) as caught:
        client.account()
    assert detail in str(caught.value)
    assert caught.value.status == 401


def test_403_is_auth_error(client, router):
    router.get("/account").mock(return_value=problem(403, "Forbidden for this token"))
    with pytest.raises(ProviderAuthError):
        client.account()


def test_404_get_is_not_found(client, router, sleeps):
    route = router.get("/predictions/gone").mock(return_value=problem(404, "Not found."))
    with pytest.raises(ProviderNotFound) as caught:
        client.get_job("gone")
    assert caught.value.status == 404
    assert route.call_count == 1 and sleeps == []


@pytest.mark.parametrize("bad_id", ["../account", "a/b", "..", ".", "", "p1?x=1", "p1#x", "p 1", "p%2F1", "p1\n"])
def test_unsafe_job_ids_never_reach_the_network(client, router, bad_id):
    route = router.route().respond(json=prediction())
    with pytest.raises(ProviderError):
        client.get_job(bad_id)
    with pytest.raises(ProviderError):
        client.cancel(bad_id)
    assert route.call_count == 0


def test_422_keeps_status_and_detail(client, router):
    router.get("/predictions/p1").mock(return_value=problem(422, "Invalid version", "Unprocessable Entity"))
    with pytest.raises(ProviderError) as caught:
        client.get_job("p1")
    assert caught.value.status == 422
    assert "Invalid version" in str(caught.value)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, content=b"\xff\xfe\x00garbage", headers={"content-type": "application/json"}),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(418, text="teapot"),
        httpx.Response(302, headers={"location": "https://evil.example/"}),
    ],
)
def test_odd_bodies_are_provider_errors(client, router, response):
    router.get("/account").mock(return_value=response)
    with pytest.raises(ProviderError):
        client.account()


def test_bearer_token_and_user_agent_are_sent(client, router):
    route = router.get("/account").respond(json={"username": "alice"})
    client.account()
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"].startswith("jobsync/")
    assert str(request.url) == f"{BASE}/account"


def test_the_token_is_read_for_each_request_so_a_rotated_one_is_used(router, sleeps):
    tokens = iter(["r8_first", "r8_second"])
    route = router.get("/account").respond(json={"username": "alice"})
    replicate = ReplicateClient(
        make_settings(replicate_api_token=None),
        token=lambda: next(tokens),
        transport=httpx.MockTransport(router.handler),
        sleep=sleeps.append,
    )
    replicate.account()
    replicate.account()
    assert [call.request.headers["authorization"] for call in route.calls] == ["Bearer r8_first", "Bearer r8_second"]


def _chain(exc: BaseException) -> str:
    parts = []
    while exc is not None:
        parts += [str(exc), repr(exc), repr(exc.args)]
        exc = exc.__cause__ or exc.__context__
    return " ".join(parts)


@pytest.mark.parametrize(
    "failure",
    [
        problem(401, f"token {TOKEN} is invalid"),
        problem(400, f"bad request with Bearer {TOKEN}"),
        httpx.Response(500, text=f"Authorization: Bearer {TOKEN}"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(200, text="not json"),
    ],
)
def test_token_never_appears_in_exceptions_or_reprs(router, sleeps, failure):
    replicate = make_client(router, sleeps, provider_max_retries=0)
    router.get("/account").mock(side_effect=[failure])
    with pytest.raises(ProviderError) as caught:
        replicate.account()
    assert TOKEN not in _chain(caught.value)
    assert TOKEN not in repr(replicate)
    assert TOKEN not in repr(replicate._http.headers)


def test_missing_token_fails_lazily_without_a_request(router, sleeps):
    route = router.route().respond(json={"username": "x"})
    replicate = make_client(router, sleeps, replicate_api_token=None)
    with pytest.raises(ProviderAuthError, match="REPLICATE_API_TOKEN is not set"):
        replicate.account()
    assert route.call_count == 0


# --------------------------------------------------------------------------- webhooks


def test_a_webhook_body_is_mapped_without_a_request(client, router):
    route = router.route().respond(json={})
    training = prediction("t1", status="succeeded", urls={"get": f"{BASE}/trainings/t1"})
    observation = client.observation_from_webhook(training)
    assert (observation.job_id, observation.kind, observation.status) == ("t1", "training", JobStatus.COMPLETED)
    assert client.observation_from_webhook(prediction("p1")).kind is None  # a prediction's URL does not say
    with pytest.raises(ValueError):
        client.observation_from_webhook(["not", "a", "job"])
    assert route.call_count == 0


def test_webhook_secret_is_fetched_once_and_cached(client, router):
    route = router.get("/webhooks/default/secret").respond(json={"key": "whsec_c2VjcmV0"})
    assert client.webhook_secret() == "whsec_c2VjcmV0"
    assert client.webhook_secret() == "whsec_c2VjcmV0"
    assert route.call_count == 1


def test_webhook_secret_failure_is_not_cached(client, router):
    route = router.get("/webhooks/default/secret").mock(
        side_effect=[
            problem(401, "nope"),
            httpx.Response(200, json={"key": "whsec_abc"}),
        ]
    )
    with pytest.raises(ProviderAuthError):
        client.webhook_secret()
    assert client.webhook_secret() == "whsec_abc"
    assert route.call_count == 2


def test_configured_webhook_secret_needs_no_request(router, sleeps):
    route = router.route().respond(json={"key": "whsec_other"})
    replicate = make_client(router, sleeps, replicate_webhook_secret="whsec_configured")
    assert replicate.webhook_secret() == "whsec_configured"
    assert route.call_count == 0


# --------------------------------------------------------------------------- registry


@pytest.fixture
def fresh_registry(monkeypatch):
    get_settings.cache_clear()
    provider_client.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
    provider_client.cache_clear()


def test_registry_caches_one_client_per_provider(fresh_registry):
    fresh_registry.setenv("REPLICATE_API_TOKEN", TOKEN)
    assert PROVIDERS == ("replicate",)
    first = provider_client()
    assert provider_client("replicate") is first
    assert first.name == "replicate" and first.display_name == "Replicate"


def test_registry_rejects_unknown_provider(fresh_registry):
    with pytest.raises(UnknownProvider):
        provider_client("modal")
    assert issubclass(UnknownProvider, ProviderError)


def test_registry_without_token_builds_and_fails_on_first_call(fresh_registry):
    fresh_registry.delenv("REPLICATE_API_TOKEN", raising=False)
    replicate = provider_client()
    with pytest.raises(ProviderAuthError, match="REPLICATE_API_TOKEN is not set"):
        replicate.account()


def test_no_request_is_started_that_the_invocation_cannot_wait_for():
    from jobsync.deadline import invocation_deadline

    class Context:
        def __init__(self, remaining_ms: int) -> None:
            self.remaining_ms = remaining_ms

        def get_remaining_time_in_millis(self) -> int:
            return self.remaining_ms

    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.extensions.get("timeout", {}).get("read"))
        return httpx.Response(200, json={"username": "acme"})

    client = ReplicateClient(make_settings(), transport=httpx.MockTransport(handler), sleep=lambda s: None)
    with invocation_deadline(Context(2_500)), pytest.raises(ProviderError, match="no time left"):
        client.account()
    assert calls == []
    with invocation_deadline(Context(6_000)):
        client.account()
    assert 0 < calls[0] <= 4.0  # the request may not outlive the invocation
