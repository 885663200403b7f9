"""Notifications in template.yaml (topic, stream consumer, webhook function, secret, dead-letter queues) and
their local emulation (the stream filter, partial batch failures, the in-process SNS topic)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import boto3
import pytest

from local import template as cfn
from local.streams import deliver_to_consumer, matches_filter
from tests.unit.template_values import PARAMS
from tests.unit.template_values import REFS as BASE_REFS

ROOT = Path(__file__).resolve().parents[2]
REFS = {
    **BASE_REFS,
    "NotifyTopic": "arn:aws:sns:us-east-1:123456789012:jobsync-NotifyTopic",
    "NotifyWebhookSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:notify-XyZ",
    "OriginVerifySecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:origin-verify-AbC",
    "DashboardDistribution.DomainName": "d111.cloudfront.net",
}


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn.load_template()


def notifier(template: dict) -> cfn.StreamConsumer:
    (consumer,) = [c for c in cfn.stream_consumers(template) if c.function.logical_id == "NotifierFunction"]
    return consumer


def stream_record(status: str, cost: str | None = None, event_name: str = "MODIFY") -> dict:
    image = {"job_id": {"S": "j1"}, "status": {"S": status}}
    if cost is not None:
        image["cost_usd"] = {"N": cost}
    return {"eventName": event_name, "dynamodb": {"NewImage": image, "SequenceNumber": f"{status}-{cost}"}}


def test_the_notifier_reads_the_jobs_stream_with_partial_batch_failures_bisect_and_a_dead_letter_queue(template):
    consumer = notifier(template)
    assert consumer.table_id == "JobsTable"
    assert consumer.reports_item_failures and consumer.bisect_on_error
    assert consumer.maximum_retry_attempts == 10
    events = template["Resources"]["NotifierFunction"]["Properties"]["Events"]["JobsStream"]["Properties"]
    assert events["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["NotifyDeadLetterQueue", "Arn"]},
    }


def test_the_stream_filter_lets_through_ended_and_priced_jobs_only(template):
    patterns = notifier(template).filter_patterns

    def passes(record: dict) -> bool:
        return any(matches_filter(pattern, record) for pattern in patterns)

    assert all(passes(stream_record(status)) for status in ("completed", "failed", "cancelled"))
    assert passes(stream_record("completed", event_name="INSERT"))
    assert passes(stream_record("running", cost="12.5"))  # may have crossed the cost threshold
    assert not passes(stream_record("running"))
    assert not passes(stream_record("queued"))
    assert not passes({"eventName": "REMOVE", "dynamodb": {"OldImage": {"status": {"S": "completed"}}}})


def test_the_filter_matcher_follows_lambdas_rules():
    assert matches_filter({"a": {"b": ["x", "y"]}}, {"a": {"b": "y"}})
    assert not matches_filter({"a": {"b": ["x"]}}, {"a": {"b": "z"}})
    assert not matches_filter({"a": {"b": ["x"]}}, {"a": {}})
    assert matches_filter({"a": [{"exists": False}]}, {}) and not matches_filter({"a": [{"exists": False}]}, {"a": 1})
    assert matches_filter({"a": [{"prefix": "jo"}]}, {"a": "job"})
    assert matches_filter({"a": [{"anything-but": ["x"]}]}, {"a": "y"})
    assert matches_filter({"a": [{"numeric": [">=", 5, "<", 10]}]}, {"a": 7})
    assert not matches_filter({"a": [{"numeric": [">=", 5]}]}, {"a": "7"})


def test_a_consumer_is_retried_from_the_first_record_it_reported_and_then_gives_up():
    records = [{"dynamodb": {"SequenceNumber": str(n)}, "eventName": "MODIFY"} for n in range(5)]
    calls: list[list[str]] = []

    def invoke(event: dict) -> dict:
        numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
        calls.append(numbers)
        return {"batchItemFailures": [{"itemIdentifier": "3"}] if "3" in numbers and len(calls) < 3 else []}

    given_up = deliver_to_consumer(
        records, patterns=(), batch_size=10, retries=5, reports_item_failures=True, invoke=invoke
    )
    assert given_up == [] and calls == [["0", "1", "2", "3", "4"], ["3", "4"], ["3", "4"]]

    calls.clear()
    always = deliver_to_consumer(
        records,
        patterns=(),
        batch_size=2,
        retries=1,
        reports_item_failures=True,
        invoke=lambda event: calls.append([]) or {"batchItemFailures": [{"itemIdentifier": "1"}]},
    )
    # Batches [0, 1], [2, 3], [4]: the first is retried from "1"; the others named no record of theirs (retried whole).
    assert [r["dynamodb"]["SequenceNumber"] for r in always] == ["1", "2", "3", "4"]
    assert len(calls) == 6  # three batches, each tried twice


def test_the_webhook_function_is_invoked_by_name_retried_twice_then_dead_lettered(template):
    props = template["Resources"]["NotifyWebhookFunction"]["Properties"]
    assert cfn.resolve(props["FunctionName"], template) == "jobsync-notify-webhook"
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 2
    assert props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["NotifyWebhookDeadLetterQueue", "Arn"]
    }
    notifier_env = cfn.function_spec(template, "NotifierFunction").environment
    on = cfn.resolve(
        notifier_env, template, parameter_values={**PARAMS, "NotifyWebhookUrl": "https://h.example/x"}, refs=REFS
    )
    off = cfn.resolve(notifier_env, template, parameter_values=PARAMS, refs=REFS)
    assert on["JOBSYNC_NOTIFY_WEBHOOK_FUNCTION"] == "jobsync-notify-webhook"
    assert off["JOBSYNC_NOTIFY_WEBHOOK_FUNCTION"] == ""  # no URL: nothing handed off
    assert on["JOBSYNC_DASHBOARD_URL"] == "https://d111.cloudfront.net"
    assert on["JOBSYNC_NOTIFY_TOPIC_ARN"] == REFS["NotifyTopic"]
    assert off["JOBSYNC_NOTIFY_COST_THRESHOLD_USD"] == ""  # off unless set


def test_the_webhook_url_reaches_no_functions_environment_only_a_secret(template):
    url = "https://hooks.slack.com/services/T0/B0/verysecret"
    values = {**PARAMS, "NotifyWebhookUrl": url}
    for spec in cfn.functions(template).values():
        env = cfn.resolve(spec.environment, template, parameter_values=values, refs=REFS)
        assert url not in json.dumps(env), spec.logical_id
    secret = template["Resources"]["NotifyWebhookSecret"]
    assert secret["Condition"] == "NotifyWebhookConfigured"
    assert secret["Properties"]["SecretString"] == {"Ref": "NotifyWebhookUrl"}
    assert template["Parameters"]["NotifyWebhookUrl"]["NoEcho"] is True
    env = cfn.resolve(
        cfn.function_spec(template, "NotifyWebhookFunction").environment, template, parameter_values=values, refs=REFS
    )
    assert env["JOBSYNC_NOTIFY_WEBHOOK_SECRET_ARN"] == REFS["NotifyWebhookSecret"]


def test_the_topic_arn_and_the_dead_letter_queues_are_stack_outputs(template):
    outputs = template["Outputs"]
    assert outputs["NotifyTopicArn"]["Value"] == {"Ref": "NotifyTopic"}
    assert {"NotifyDeadLetterQueueUrl", "NotifyWebhookDeadLetterQueueUrl"} <= set(outputs)
    assert template["Resources"]["NotifyTopic"]["Type"] == "AWS::SNS::Topic"


# ---- the local topic ------------------------------------------------------------------------------------


@pytest.fixture
def local_topic(monkeypatch):
    from local.notify_topic import LocalTopic, create_app, topic_arn
    from local.stack import ThreadedServer, free_port

    topic = LocalTopic(topic_arn("us-east-1"))
    server = ThreadedServer(create_app(topic), free_port(), name="sns-test")
    server.start()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("sns", endpoint_url=server.url)
    yield topic, client
    server.close()


def test_the_local_topic_answers_boto3s_publish_and_logs_one_line(local_topic, caplog):
    topic, client = local_topic
    message = {
        "type": "job_ended",
        "job_id": "j1",
        "cost_usd": 1.5,
        "duration_seconds": 61.2,
        "job_url": "http://x/#/jobs/j1",
    }
    with caplog.at_level(logging.INFO, logger="local.notifications"):
        answer = client.publish(
            TopicArn=topic.arn,
            Message=json.dumps(message),
            Subject="jobsync: acme/m completed",
            MessageAttributes={"status": {"DataType": "String", "StringValue": "completed"}},
        )
    (published,) = topic.messages()
    assert answer["MessageId"] == published["message_id"]
    assert json.loads(published["message"]) == message
    assert published["attributes"] == {"status": "completed"}
    assert "jobsync: acme/m completed  job j1  $1.50  61 s  http://x/#/jobs/j1" in caplog.text
    with pytest.raises(client.exceptions.NotFoundException):
        client.publish(TopicArn=topic.arn + "-other", Message="{}")


@pytest.mark.parametrize("value", ["", "0", "25", "7.5"])
def test_every_threshold_the_template_allows_is_a_setting_every_function_accepts(template, value):
    from jobsync.config import settings_from_env

    pattern = template["Parameters"]["NotifyCostThresholdUsd"]["AllowedPattern"]
    assert re.fullmatch(pattern, value)
    expected = float(value) if value else None
    assert settings_from_env({"JOBSYNC_NOTIFY_COST_THRESHOLD_USD": value}).notify_cost_threshold_usd == expected


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "$5"])
def test_the_template_refuses_a_threshold_that_is_not_an_amount(template, value):
    assert not re.fullmatch(template["Parameters"]["NotifyCostThresholdUsd"]["AllowedPattern"], value)


def test_a_consumer_that_raises_is_retried_whole_and_each_failure_logged(caplog):
    records = [{"dynamodb": {"SequenceNumber": str(n)}, "eventName": "MODIFY"} for n in range(3)]
    calls: list[int] = []

    def invoke(event: dict) -> None:
        calls.append(len(event["Records"]))
        if len(calls) < 3:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="local.streams"):
        given_up = deliver_to_consumer(
            records, patterns=(), batch_size=10, retries=2, reports_item_failures=False, invoke=invoke
        )
    assert given_up == [] and calls == [3, 3, 3]
    assert caplog.text.count("a stream consumer failed on 3 record(s)") == 2 and "RuntimeError: boom" in caplog.text
