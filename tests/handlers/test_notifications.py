"""Notifications end to end under moto: job writes → the real stream → the notifier → SNS (read back through a
subscribed SQS queue) and the webhook channel (notify_webhook, through the recorded hand-offs)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import httpx
import pytest
from botocore.config import Config

from jobsync import wiring
from jobsync.domain.job import JobObservation
from jobsync.domain.status import JobStatus
from jobsync.services import webhook_delivery
from jobsync.services.job_updates import record_observation
from jobsync.store.notifications import Claim
from local.streams import StreamReader
from tests.conftest import REGION, LambdaContext, load_handler

WEBHOOK_URL = "https://hooks.example.test/services/T000/B000/secretpart"
WEBHOOK_FUNCTION = "jobsync-notify-webhook"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


NOW = datetime.now(timezone.utc)
STARTED = iso(NOW - timedelta(minutes=30))
ENDED = iso(NOW - timedelta(minutes=1))


def observe(job_id: str, status: JobStatus, **facts) -> None:
    """A provider's report, through the one write path every source (poller, webhook, sync, cancel) uses."""
    record_observation(
        JobObservation(
            job_id=job_id,
            provider="replicate",
            status=status,
            provider_status=status.value,
            kind="training",
            model="acme/flux-lora-trainer",
            created_at=iso(NOW - timedelta(minutes=31)),
            started_at=STARTED,
            **facts,
        )
    )


@pytest.fixture
def topic(tables, monkeypatch):
    """A topic under moto with an SQS queue subscribed to it (raw delivery): what a subscriber receives."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    arn = sns.create_topic(Name="jobsync-notifications")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    monkeypatch.setenv("JOBSYNC_NOTIFY_TOPIC_ARN", arn)
    monkeypatch.setenv("JOBSYNC_DASHBOARD_URL", "https://dashboard.example.test")
    wiring.reset()

    def received() -> list[dict]:
        messages = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return received


@pytest.fixture
def stream(tables):
    streams = boto3.client("dynamodbstreams", region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))
    return StreamReader.for_table(boto3.client("dynamodb", region_name=REGION), streams, "jobs")


def written(record: dict) -> tuple[str, str]:
    """The job id and status a stream record wrote."""
    image = record["dynamodb"]["NewImage"]
    return image["job_id"]["S"], image["status"]["S"]


def notify(records: list[dict]) -> dict:
    return load_handler("notifier")({"Records": records}, LambdaContext(function_name="notifier"))


def test_a_job_that_ends_is_published_once_with_its_fields(topic, stream):
    observe("job-a", JobStatus.RUNNING)
    observe("job-a", JobStatus.COMPLETED, completed_at=ENDED, predict_time=1740.0)
    records = stream.read()
    answer = notify(records)
    assert answer["batchItemFailures"] == [] and answer["published"] == 1
    (message,) = topic()
    assert message["type"] == "job_ended" and message["event_id"] == "job-a#ended"
    assert message["job_id"] == "job-a" and message["model"] == "acme/flux-lora-trainer"
    assert message["status"] == "completed" and message["previous_status"] == "running"
    assert message["duration_seconds"] == pytest.approx(29 * 60, abs=1)
    assert message["cost_usd"] == pytest.approx(1740.0 * 0.001525, abs=0.01)
    assert message["job_url"] == "https://dashboard.example.test/#/jobs/job-a"
    # A replay of the same records (Lambda's retry, a bisected batch) publishes nothing more.
    again = notify(records)
    assert again["published"] == 0 and again["duplicates"] == 1 and again["batchItemFailures"] == []
    assert topic() == []


def test_the_same_end_written_by_two_sources_is_published_once(topic, stream):
    observe("job-b", JobStatus.RUNNING)
    observe("job-b", JobStatus.FAILED, completed_at=ENDED, error_message="CUDA out of memory")  # the poller
    observe("job-b", JobStatus.FAILED, completed_at=ENDED, predict_time=60.0)  # the webhook, later, with a fact more
    records = stream.read()
    assert len(records) == 3
    notify(records[:2])  # two invocations, as the records may arrive
    notify(records[2:])
    messages = topic()
    assert [(m["job_id"], m["status"]) for m in messages] == [("job-b", "failed")]


def test_a_failed_publish_releases_the_claim_and_the_retry_publishes(topic, stream, monkeypatch):
    observe("job-c", JobStatus.RUNNING)
    observe("job-c", JobStatus.CANCELLED, completed_at=ENDED)
    records = stream.read()
    (ended,) = [r for r in records if written(r) == ("job-c", "cancelled")]
    real_arn = wiring.get_settings().notify_topic_arn
    monkeypatch.setenv("JOBSYNC_NOTIFY_TOPIC_ARN", real_arn.replace("jobsync-notifications", "no-such-topic"))
    wiring.reset()
    answer = notify(records)
    assert answer["batchItemFailures"] == [{"itemIdentifier": ended["dynamodb"]["SequenceNumber"]}]
    assert wiring.notification_store().state("job-c#ended") is None  # released
    monkeypatch.setenv("JOBSYNC_NOTIFY_TOPIC_ARN", real_arn)
    wiring.reset()
    assert notify(records)["published"] == 1  # Lambda's retry
    assert [m["status"] for m in topic()] == ["cancelled"]


def test_a_claim_held_by_a_live_invocation_is_retried_later_and_taken_over_once_its_lease_ran_out(topic, stream):
    observe("job-d", JobStatus.RUNNING)
    observe("job-d", JobStatus.COMPLETED, completed_at=ENDED)
    records = stream.read()
    store = wiring.notification_store()
    now = datetime.now(timezone.utc).timestamp()
    assert store.claim("job-d#ended", "other-invocation", now, now + 600) is Claim.TAKEN
    answer = notify(records)
    assert len(answer["batchItemFailures"]) == 1 and topic() == []  # not skipped: retried
    assert store.claim("job-d#ended", "other-invocation", now, now - 1) is Claim.BUSY  # its own claim, still live
    # The holder died: its lease (its invocation's deadline) has run out.
    state = boto3.resource("dynamodb", region_name=REGION).Table("state")
    state.put_item(Item={"pk": "notify#job-d#ended", "state": "claimed", "claim": "dead", "lease_until": 1})
    assert notify(records)["published"] == 1
    assert [m["job_id"] for m in topic()] == ["job-d"]


def test_the_cost_threshold_is_announced_once(topic, stream, monkeypatch):
    monkeypatch.setenv("JOBSYNC_NOTIFY_COST_THRESHOLD_USD", "2.5")
    wiring.reset()
    observe("job-e", JobStatus.RUNNING)
    observe("job-e", JobStatus.COMPLETED, completed_at=ENDED, predict_time=2000.0)  # $3.05 on an H100
    observe("job-f", JobStatus.RUNNING)
    observe("job-f", JobStatus.COMPLETED, completed_at=ENDED, predict_time=100.0)  # $0.15
    records = stream.read()
    notify(records)
    notify(records)
    messages = sorted((m["job_id"], m["type"]) for m in topic())
    assert messages == [
        ("job-e", "job_cost_threshold_crossed"),
        ("job-e", "job_ended"),
        ("job-f", "job_ended"),
    ]


def test_jobs_that_are_only_running_publish_nothing(topic, stream):
    observe("job-g", JobStatus.QUEUED)
    observe("job-g", JobStatus.RUNNING)
    assert notify(stream.read())["published"] == 0
    assert topic() == []


# ---- the webhook channel ------------------------------------------------------------------------------


@pytest.fixture
def webhook(topic, monkeypatch):
    """The webhook channel on; every POST to it answered by `answers` in turn (then 200), and recorded."""
    monkeypatch.setenv("JOBSYNC_NOTIFY_WEBHOOK_FUNCTION", WEBHOOK_FUNCTION)
    monkeypatch.setenv("JOBSYNC_NOTIFY_WEBHOOK_URL", WEBHOOK_URL)
    wiring.reset()
    posts: list[httpx.Request] = []
    answers: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(answers.pop(0) if answers else 200)

    real_client = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda: real_client(transport=httpx.MockTransport(answer)))
    monkeypatch.setattr(webhook_delivery.time, "sleep", lambda seconds: None)
    return posts, answers


def run_deliveries(handed_off) -> int:
    return handed_off.drain(WEBHOOK_FUNCTION, "notify_webhook")


def test_each_notification_is_posted_to_the_webhook_once(webhook, stream, handed_off):
    posts, _ = webhook
    observe("job-h", JobStatus.RUNNING)
    observe("job-h", JobStatus.COMPLETED, completed_at=ENDED, predict_time=600.0)
    records = stream.read()
    notify(records)
    notify(records)  # replayed
    assert handed_off.to(WEBHOOK_FUNCTION) == [{"event_id": "job-h#ended"}]  # only the id: the rest is in DynamoDB
    assert run_deliveries(handed_off) == 1
    (post,) = posts
    assert str(post.url) == WEBHOOK_URL and post.method == "POST"
    body = json.loads(post.content)
    assert body["text"].startswith(":white_check_mark: Job `job-h` (acme/flux-lora-trainer) completed after 29m 0s")
    assert "<https://dashboard.example.test/#/jobs/job-h|Open the job>" in body["text"]
    assert body["job_id"] == "job-h" and body["status"] == "completed" and body["cost_usd"] == 0.915
    # A duplicate invocation (Lambda's async invoke is at least once) posts nothing.
    handler = load_handler("notify_webhook")
    assert handler({"event_id": "job-h#ended"}, LambdaContext())["outcome"] == "already delivered"
    assert len(posts) == 1
    assert wiring.notification_store().pending_deliveries() == []


def test_a_failing_webhook_is_retried_then_raises_for_lambdas_retries_and_the_next_run_delivers(
    webhook, stream, handed_off
):
    posts, answers = webhook
    answers.extend([503, 500, 502])  # the first invocation's three tries
    observe("job-i", JobStatus.RUNNING)
    observe("job-i", JobStatus.FAILED, completed_at=ENDED)
    notify(stream.read())
    handler = load_handler("notify_webhook")
    with pytest.raises(webhook_delivery.DeliveryFailed, match="503, 500, 502"):
        handler({"event_id": "job-i#ended"}, LambdaContext())
    assert len(posts) == 3
    assert wiring.notification_store().delivery("job-i#ended").state == "retrying"
    assert wiring.notification_store().pending_deliveries() == ["job-i#ended"]
    # Lambda's retry, a minute later.
    assert handler({"event_id": "job-i#ended"}, LambdaContext())["outcome"] == "delivered"
    assert len(posts) == 4
    assert wiring.notification_store().pending_deliveries() == []


def test_the_stream_never_waits_for_the_webhook(webhook, stream, handed_off):
    """The notifier only hands off: a webhook that is down does not fail or slow the stream's batch."""
    posts, answers = webhook
    answers.extend([500] * 10)
    observe("job-j", JobStatus.RUNNING)
    observe("job-j", JobStatus.COMPLETED, completed_at=ENDED)
    answer = notify(stream.read())
    assert answer["batchItemFailures"] == [] and posts == []


def test_a_lost_hand_off_is_resumed_by_the_poller_tick_after_ten_minutes_and_given_up_after_two(
    webhook, stream, handed_off
):
    posts, answers = webhook
    handed_off.refusing = True  # Lambda's API is down: the hand-off is lost
    observe("job-k", JobStatus.RUNNING)
    observe("job-k", JobStatus.COMPLETED, completed_at=ENDED)
    assert notify(stream.read())["published"] == 1
    handed_off.refusing = False
    stored = wiring.notification_store().delivery("job-k#ended")
    start = stored.updated_at
    assert webhook_delivery.resume_deliveries(clock=lambda: start + 599) == 0  # maybe still Lambda's
    assert webhook_delivery.resume_deliveries(clock=lambda: start + 600) == 1
    assert handed_off.to(WEBHOOK_FUNCTION) == [{"event_id": "job-k#ended"}]
    # That run fails too (the receiver is down); resumed once more, then given up (the DLQ has each run).
    answers.extend([500] * 3)
    with pytest.raises(webhook_delivery.DeliveryFailed):
        run_deliveries(handed_off)
    later = wiring.notification_store().delivery("job-k#ended").updated_at
    assert webhook_delivery.resume_deliveries(clock=lambda: later + 600) == 1
    handed_off.waiting.clear()
    assert webhook_delivery.resume_deliveries(clock=lambda: later + 1200) == 0
    assert wiring.notification_store().delivery("job-k#ended").state == "abandoned"
    assert wiring.notification_store().pending_deliveries() == []
    assert len(posts) == 3


def test_without_the_webhook_channel_the_outbox_is_not_even_read(topic, monkeypatch):
    reads = []
    monkeypatch.setattr(wiring.notification_store(), "pending_deliveries", lambda: reads.append(1) or [])
    assert webhook_delivery.resume_deliveries() == 0 and reads == []


def test_the_poller_tick_resumes_a_delivery_whose_hand_off_was_lost(webhook, stream, handed_off, replicate):
    from jobsync.services.polling import poll_tick

    posts, _ = webhook
    handed_off.refusing = True
    observe("job-l", JobStatus.RUNNING)
    observe("job-l", JobStatus.COMPLETED, completed_at=ENDED)
    notify(stream.read())
    handed_off.refusing = False
    # Eleven minutes later, nothing has delivered it.
    state = boto3.resource("dynamodb", region_name=REGION).Table("state")
    eleven_minutes_ago = int(datetime.now(timezone.utc).timestamp()) - 660
    state.update_item(
        Key={"pk": "notify#job-l#ended"},
        UpdateExpression="SET updated_at = :then",
        ExpressionAttributeValues={":then": eleven_minutes_ago},
    )
    poll_tick()
    assert handed_off.to(WEBHOOK_FUNCTION) == [{"event_id": "job-l#ended"}]
    assert run_deliveries(handed_off) == 1
    assert [json.loads(post.content)["job_id"] for post in posts] == ["job-l"]


def test_a_store_failure_fails_only_from_that_record_on(topic, stream, monkeypatch):
    from jobsync.domain.errors import StoreUnavailable

    observe("job-m", JobStatus.RUNNING)
    observe("job-m", JobStatus.COMPLETED, completed_at=ENDED)
    observe("job-n", JobStatus.RUNNING)
    observe("job-n", JobStatus.COMPLETED, completed_at=ENDED)
    records = stream.read()
    store = wiring.notification_store()
    real_claim = store.claim

    def claim(event_id, *args):
        if event_id.startswith("job-n"):
            raise StoreUnavailable("the job store did not answer: EndpointConnectionError")
        return real_claim(event_id, *args)

    monkeypatch.setattr(store, "claim", claim)
    answer = notify(records)
    (failed,) = [r for r in records if written(r) == ("job-n", "completed")]
    assert answer["published"] == 1
    assert answer["batchItemFailures"] == [{"itemIdentifier": failed["dynamodb"]["SequenceNumber"]}]
    monkeypatch.setattr(store, "claim", real_claim)
    assert notify(records)["published"] == 1  # the retry: job-m's is not published again
    assert sorted(m["job_id"] for m in topic()) == ["job-m", "job-n"]


def test_the_sample_event_publishes_its_job_end(topic):
    from tests.conftest import load_event

    answer = notify(load_event("notifier")["Records"])
    assert answer == {"batchItemFailures": [], "published": 1, "duplicates": 0}
    (message,) = topic()
    assert (message["job_id"], message["status"], message["previous_status"]) == ("r8-job-1", "completed", "running")
    assert message["at"] == "2025-03-12T19:23:41.000000Z"  # the record's ApproximateCreationDateTime


CONCURRENT = 8


def test_concurrent_invocations_over_the_same_records_publish_once(topic, stream, monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    observe("job-o", JobStatus.RUNNING)
    observe("job-o", JobStatus.COMPLETED, completed_at=ENDED)
    records = stream.read()
    # Every invocation has read its batch before any claims: all of them claim at the same moment.
    barrier = threading.Barrier(CONCURRENT, timeout=30)
    store_type = type(wiring.notification_store())
    real_claim = store_type.claim

    def claim_together(self, *args):
        barrier.wait()
        return real_claim(self, *args)

    monkeypatch.setattr(store_type, "claim", claim_together)
    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(lambda _: notify(records), range(CONCURRENT)))
    assert sum(answer["published"] for answer in answers) == 1
    # The others found it claimed by a live invocation (retried later) or already published: none was lost.
    assert all(answer["published"] == 1 or answer["batchItemFailures"] or answer["duplicates"] for answer in answers)
    assert [m["job_id"] for m in topic()] == ["job-o"]


def test_concurrent_deliveries_of_one_event_post_once(webhook, stream, handed_off):
    from concurrent.futures import ThreadPoolExecutor

    posts, _ = webhook
    observe("job-p", JobStatus.RUNNING)
    observe("job-p", JobStatus.FAILED, completed_at=ENDED)
    notify(stream.read())
    handler = load_handler("notify_webhook")
    with ThreadPoolExecutor(CONCURRENT) as pool:
        outcomes = list(
            pool.map(lambda _: handler({"event_id": "job-p#ended"}, LambdaContext())["outcome"], range(CONCURRENT))
        )
    assert outcomes.count("delivered") == 1
    assert set(outcomes) <= {"delivered", "being delivered", "already delivered"}
    assert len(posts) == 1


def test_a_local_start_announces_what_a_crash_kept_from_the_notifier_once(topic, stream):
    from local.notify_topic import catch_up

    observe("job-q", JobStatus.RUNNING)
    observe("job-q", JobStatus.COMPLETED, completed_at=ENDED)  # its record never reached the notifier
    observe("job-r", JobStatus.RUNNING)
    observe("job-r", JobStatus.FAILED, completed_at=ENDED)
    notify(stream.read()[:2])  # job-q's end was announced before the crash; job-r's was not
    assert [m["job_id"] for m in topic()] == ["job-q"]
    observe("job-s", JobStatus.COMPLETED, completed_at=iso(NOW - timedelta(minutes=20)))
    stream.read()  # the stack restarts: its stream is read from the end

    assert catch_up("jobs") == 1
    assert [(m["job_id"], m["status"]) for m in topic()] == [("job-r", "failed")]  # job-s: too old to be news
    assert catch_up("jobs") == 0  # the next start: nothing twice
    assert topic() == []
