"""The WebSocket and stream handlers read their events as the dicts Lambda passes (not through Powertools'
data classes, whose package costs a cold start 20 ms): the edges of those events (no headers, no query
string, removed items, unchanged statuses) answer as before."""

from __future__ import annotations

import copy
from decimal import Decimal

from jobsync.domain.status import JobStatus
from jobsync.services.broadcast import status_changes
from tests.conftest import LambdaContext, load_event, load_handler


def test_a_connection_without_a_query_string_is_refused(tables):
    event = copy.deepcopy(load_event("ws_connect"))
    event["queryStringParameters"] = None
    assert load_handler("ws_connect")(event, LambdaContext()) == {"statusCode": 401, "body": "unauthorized"}


def test_a_default_route_message_that_is_not_an_object_is_a_400(tables):
    event = load_event("ws_default")
    for body in ("[1, 2]", None, "null"):
        event["body"] = body
        assert load_handler("ws_default")(event, LambdaContext())["statusCode"] == 400


def test_removed_items_and_unchanged_statuses_are_not_broadcast(tables):
    event = load_event("broadcaster")
    modified, inserted = event["Records"]
    removed = {**copy.deepcopy(modified), "eventName": "REMOVE"}
    removed["dynamodb"].pop("NewImage")
    unchanged = copy.deepcopy(modified)
    unchanged["dynamodb"]["OldImage"]["status"] = {"S": "running"}
    event["Records"] = [modified, removed, unchanged, inserted]
    result = load_handler("broadcaster")(event, LambdaContext())
    assert result == {"changes": 2, "sent": 0, "gone": 0, "failed": 0}  # nobody is connected


def test_status_changes_from_plain_images():
    new = {"job_id": "j1", "provider": "replicate", "status": "running", "version": Decimal(3), "kind": "training"}
    changes = status_changes([(new, {}), (new, {**new, "status": "queued"}), (new, new), ({}, new)])
    assert [change.previous_status for change in changes] == [None, "queued"]  # two of the four writes are news
    assert changes[0].job.status is JobStatus.RUNNING and changes[0].job.version == 3
