"""Webhook ids claimed before the update is applied, and every id bounded where it comes in.

Of any number of deliveries of one `webhook-id`, exactly one applies it; a delivery whose update failed gives
its claim up so that the provider's retry is applied. Job ids and webhook ids outside the one definition
(jobsync.domain.identifiers) are a 400 at every entry point and never reach DynamoDB.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from moto.dynamodb.models import DynamoDBBackend

from jobsync import wiring
from jobsync.api.routes import ROUTES
from jobsync.domain.errors import StoreUnavailable
from jobsync.services import webhooks
from tests.conftest import LambdaContext, load_event, load_handler
from tests.fakes.replicate import replicate_job
from tests.handlers.test_progress_and_webhooks import SECRET, deliver, signed

DELIVERIES = 20


@pytest.fixture
def webhook_secret(monkeypatch):
    monkeypatch.setenv("REPLICATE_WEBHOOK_SECRET", SECRET)
    wiring.reset()
    return SECRET


@pytest.fixture
def atomic_moto(monkeypatch):
    """DynamoDB applies each conditional write atomically; moto, called from threads, checks a condition and
    writes in separate Python steps. One lock around moto's writes gives it DynamoDB's guarantee, and
    nothing more: which delivery wins is still up to the threads."""
    lock = threading.RLock()  # moto's transactions call its own put_item and update_item
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def applied(monkeypatch) -> list[str]:
    """The job ids of every update the webhook service applied (it still applies them)."""
    calls: list[str] = []
    real = webhooks.record_observation

    def counting(observation, *args, **kwargs):
        calls.append(observation.job_id)
        return real(observation, *args, **kwargs)

    monkeypatch.setattr(webhooks, "record_observation", counting)
    return calls


def job(api, job_id: str) -> dict:
    status, body = api.call("get_job", path={"job_id": job_id})
    assert status == 200, body
    return body["job"]


def test_concurrent_deliveries_of_one_webhook_id_apply_it_exactly_once(
    api, webhook_secret, atomic_moto, applied, monkeypatch
):
    # Every delivery is verified and parsed before any of them claims: all twenty claim at the same moment.
    barrier = threading.Barrier(DELIVERIES, timeout=30)
    real_claim = type(wiring.state_store()).claim_webhook

    def claim_together(self, *args, **kwargs):
        barrier.wait()
        return real_claim(self, *args, **kwargs)

    monkeypatch.setattr(type(wiring.state_store()), "claim_webhook", claim_together)
    event = signed(replicate_job("processing", job_id="race1", logs="Step 1/10"), webhook_id="msg_race")

    with ThreadPoolExecutor(DELIVERIES) as pool:
        answers = list(pool.map(lambda _: deliver(api, event), range(DELIVERIES)))

    assert {status for status, _ in answers} == {200}
    assert Counter(body["duplicate"] for _, body in answers) == {True: DELIVERIES - 1, False: 1}
    assert applied == ["race1"]
    assert job(api, "race1")["status"] == "running"
    assert wiring.state_store().webhook_receipt("msg_race")["state"] == "applied"


def test_a_delivery_arriving_while_another_applies_the_same_id_changes_nothing(api, webhook_secret, monkeypatch):
    # A deterministic interleaving: the second delivery comes between the first one's claim and its update.
    first = signed(replicate_job("processing", job_id="inter1"), webhook_id="msg_inter")
    second = signed(replicate_job("succeeded", job_id="inter1"), webhook_id="msg_inter")
    real = webhooks.record_observation
    during: list[tuple[int, dict]] = []

    def apply_after_a_second_delivery(observation, *args, **kwargs):
        if not during:
            during.append(deliver(api, second))
        return real(observation, *args, **kwargs)

    monkeypatch.setattr(webhooks, "record_observation", apply_after_a_second_delivery)
    status, body = deliver(api, first)

    assert during == [(200, {"received": True, "duplicate": True, "job_id": None, "status": None})]
    assert (status, body["duplicate"], body["status"]) == (200, False, "running")
    assert job(api, "inter1")["status"] == "running"  # the second delivery's `succeeded` was never applied


def test_a_delivery_whose_update_failed_releases_its_claim_and_the_retry_is_applied(api, webhook_secret, monkeypatch):
    event = signed(replicate_job("succeeded", job_id="retry1", predict_time=5.0), webhook_id="msg_retry")
    real = webhooks.record_observation
    failures = [StoreUnavailable("the job store did not answer: EndpointConnectionError")]

    def failing_once(observation, *args, **kwargs):
        if failures:
            raise failures.pop()
        return real(observation, *args, **kwargs)

    monkeypatch.setattr(webhooks, "record_observation", failing_once)
    status, body = deliver(api, event)
    assert (status, body["error"]) == (503, "store_unavailable")
    assert wiring.state_store().webhook_receipt("msg_retry") is None
    assert api.call("get_job", path={"job_id": "retry1"})[0] == 404

    status, body = deliver(api, event)  # the provider's retry: same id, same body
    assert (status, body["duplicate"], body["status"]) == (200, False, "completed")
    assert deliver(api, event)[1]["duplicate"] is True


def test_a_receipt_that_could_not_be_marked_still_answers_2xx_for_the_stored_job(api, webhook_secret, monkeypatch):
    event = signed(replicate_job("processing", job_id="mark1"), webhook_id="msg_mark")

    def unavailable(*args, **kwargs):
        raise StoreUnavailable("the job store did not answer: ReadTimeoutError")

    monkeypatch.setattr(type(wiring.state_store()), "webhook_applied", unavailable)
    status, body = deliver(api, event)
    assert (status, body["duplicate"], body["status"]) == (200, False, "running")
    assert job(api, "mark1")["status"] == "running"
    # The claim holds until it goes stale: a redelivery meanwhile is a replay.
    assert wiring.state_store().webhook_receipt("msg_mark")["state"] == "claimed"
    assert deliver(api, event)[1]["duplicate"] is True


def test_a_claim_left_by_an_invocation_that_died_is_taken_over_once_stale(api, webhook_secret, applied):
    state = wiring.state_store()
    now = webhooks.time.time()
    assert state.claim_webhook("msg_dead", "a-claim-nobody-holds", now - webhooks.CLAIM_STALE_SECONDS - 1, 60)
    assert state.claim_webhook("msg_busy", "a-claim-still-held", now, webhooks.CLAIM_STALE_SECONDS)

    dead = deliver(api, signed(replicate_job("processing", job_id="dead1"), webhook_id="msg_dead"))
    busy = deliver(api, signed(replicate_job("processing", job_id="busy1"), webhook_id="msg_busy"))

    assert (dead[0], dead[1]["duplicate"], busy[0], busy[1]["duplicate"]) == (200, False, 200, True)
    assert applied == ["dead1"]
    # The invocation that died cannot release or mark a claim that is no longer its own.
    state.release_webhook("msg_dead", "a-claim-nobody-holds")
    state.webhook_applied("msg_dead", "a-claim-nobody-holds", "other")
    assert state.webhook_receipt("msg_dead")["state"] == "applied"
    assert state.webhook_receipt("msg_dead")["job_id"] == "dead1"


def test_a_receipt_of_the_previous_format_still_counts_as_applied(api, webhook_secret, applied):
    # Receipts written before claims existed ({pk, job_id, received_at, expires_at}) stay replays.
    wiring.state_store()._put({"pk": "webhook#msg_old", "job_id": "old1", "received_at": 1, "expires_at": 2})
    assert deliver(api, signed(replicate_job("processing", job_id="old1"), webhook_id="msg_old"))[1]["duplicate"]
    assert applied == []


# ---- ids at the edge ------------------------------------------------------------------------------------------

BAD_IDS = {
    "too-long-for-dynamodb": "x" * 1_000,
    "over-the-bound": "a" * 129,
    "slash": "a/b",
    "dot-segment": "..",
    "hash": "a#b",
    "space": "a b",
    "non-ascii": "jöb",
    "newline": "job\n",
}


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_a_signed_webhook_whose_job_id_is_not_a_job_id_is_400_and_stores_nothing(api, webhook_secret, bad):
    status, body = deliver(api, signed(replicate_job("processing", job_id=bad), webhook_id="msg_badjob"))
    assert (status, body["error"]) == (400, "invalid_input") and "job id" in body["message"]
    assert set(body) == {"error", "message"}
    assert wiring.state_store().webhook_receipt("msg_badjob") is None


@pytest.mark.parametrize(
    "bad", ["w" * 2_041, "w" * 129, "msg.1", "msg 1", "msg#1", "msg_ü"], ids=["2041", "129", "dot", "space", "#", "ü"]
)
def test_a_signed_webhook_whose_webhook_id_is_not_a_webhook_id_is_400_and_stores_nothing(api, webhook_secret, bad):
    status, body = deliver(api, signed(replicate_job("processing", job_id="fine1"), webhook_id=bad))
    assert (status, body["error"]) == (400, "invalid_input") and "webhook-id" in body["message"]
    assert api.call("get_job", path={"job_id": "fine1"})[0] == 404


def test_the_longest_ids_are_accepted_end_to_end(api, webhook_secret):
    job_id, webhook_id = "j" * 128, "m" * 128
    status, body = deliver(api, signed(replicate_job("processing", job_id=job_id), webhook_id=webhook_id))
    assert (status, body["job_id"]) == (200, job_id)
    assert job(api, job_id)["status"] == "running"
    assert api.call("inline_progress", path={"job_id": job_id})[0] == 200


JOB_ROUTES = [route for route in ROUTES if "{job_id}" in route.path]


@pytest.mark.parametrize("route", JOB_ROUTES, ids=[route.function for route in JOB_ROUTES])
@pytest.mark.parametrize("bad", [*BAD_IDS.values(), "a" * 257, ""], ids=[*BAD_IDS.keys(), "257", "empty"])
def test_every_job_id_path_parameter_outside_the_definition_is_400(api, route, bad):
    status, body = api.call(route.function, path={"job_id": bad})
    assert status == 400, (route.key, body)
    assert body["error"] == "invalid_input" and set(body) == {"error", "message"}


def test_the_job_routes_are_the_ones_checked():
    assert {route.function for route in JOB_ROUTES} >= {"get_job", "inline_progress"}


def test_a_provider_list_item_with_a_bad_id_is_skipped_and_logged_never_stored(api, replicate, caplog):
    replicate.add(replicate_job("succeeded", job_id="good1"))
    for bad in ("x" * 1_000, "a" * 129, "a/b", "p.1"):
        replicate.add(replicate_job("succeeded", job_id=bad))
    replicate.add(replicate_job("processing", job_id="t" * 300), kind="training")

    status, body = api.call("sync_jobs")
    assert (status, body["synced"]) == (200, 1)
    listed = api.call("list_jobs", query={"limit": "500"})[1]["jobs"]
    assert [item["job_id"] for item in listed] == ["good1"]
    skipped = [
        record for record in caplog.records if record.getMessage() == "skipping an unreadable job in a Replicate list"
    ]
    assert len(skipped) == 5 and all("job id" in record.reason for record in skipped)


def test_a_refresh_skips_a_list_item_with_a_bad_id_too(api, replicate):
    replicate.add(replicate_job("processing", job_id="live1"))
    api.call("sync_jobs")
    replicate.update("live1", status="succeeded")
    replicate.add(replicate_job("processing", job_id="y" * 200, created_at="2026-11-02T10:00:00.000000Z"))
    status, body = api.call("list_jobs", query={"sync_active": "true"})
    assert status == 200
    assert [(item["job_id"], item["status"]) for item in body["jobs"]] == [("live1", "completed")]


# ---- wrong methods -------------------------------------------------------------------------------------------


def _not_found_event(method: str, path: str) -> dict:
    event = load_event("not_found")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    return event


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/api/health", "GET"),
        ("DELETE", "/api/cloud/jobs", "GET"),
        ("POST", "/api/cloud/jobs/abc", "GET"),
        ("DELETE", "/api/cloud/jobs/sync", "POST"),  # the sync action, as documented, not a job called "sync"
        ("PATCH", "/api/cloud/polling/setting", "PUT"),
        ("GET", "/api/webhooks/replicate", "POST"),
        ("TRACE", "/api/cloud/jobs/abc/inline-progress", "GET"),
    ],
)
def test_a_known_path_with_another_method_is_405_with_allow(aws_env, method, path, allow):
    answer = load_handler("not_found")(_not_found_event(method, path), LambdaContext())
    assert answer["statusCode"] == 405
    assert answer["headers"]["allow"] == allow
    body = json.loads(answer["body"])
    assert body["error"] == "method_not_allowed" and method in body["message"] and allow in body["message"]


@pytest.mark.parametrize("path", ["/api/cloud/jobz", "/api/health/", "/api/cloud/jobs/a/b/c", "/api//health", "/x"])
def test_an_unknown_path_stays_404_whatever_the_method(aws_env, path):
    for method in ("GET", "TRACE"):
        answer = load_handler("not_found")(_not_found_event(method, path), LambdaContext())
        assert answer["statusCode"] == 404, (method, path)
        assert json.loads(answer["body"])["error"] == "not_found"
