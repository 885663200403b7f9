"""store/dynamo.py: the stores' calls on one plain client with boto3's own conversions answer as boto3's Table
resource answers, and no resource is built (building one cost every cold start its model and classes)."""

from __future__ import annotations

import threading
from decimal import Decimal

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import Binary

from jobsync.store import dynamo
from jobsync.store.state import StateStore

ITEM = {
    "pk": "item#1",
    "number": Decimal("1.5"),
    "whole": 7,
    "names": {"a", "b"},
    "nested": {"list": [1, "two", True, None, {"deep": Decimal("0.25")}], "empty": ""},
    "blob": Binary(b"\x00\x01"),
}


def both_tables(name: str):
    """The store's Table and boto3's own Table resource for `name`, on the same moto."""
    return dynamo.table(name), boto3.resource("dynamodb", region_name="us-east-1").Table(name)


def test_items_written_and_read_through_the_store_are_the_resources_items(tables):
    ours, resources = both_tables(tables["StateTable"])

    ours.put_item(Item=ITEM)

    read = ours.get_item(Key={"pk": "item#1"}, ConsistentRead=True)["Item"]
    assert read == ITEM
    assert read == resources.get_item(Key={"pk": "item#1"}, ConsistentRead=True)["Item"]


def test_conditions_updates_and_queries_answer_as_the_resources_do(tables):
    ours, resources = both_tables(tables["StateTable"])
    ours.put_item(Item={**ITEM, "pk": "ours"})
    resources.put_item(Item={**ITEM, "pk": "theirs"})

    def update(table, pk):
        return table.update_item(
            Key={"pk": pk},
            UpdateExpression="SET whole = whole + :one, added = :added",
            ConditionExpression=Attr("number").gt(Decimal("1")) & Attr("names").contains("a"),
            ExpressionAttributeValues={":one": 1, ":added": ["x", Decimal("2")]},
            ReturnValues="ALL_NEW",
        )["Attributes"]

    ours_updated, theirs_updated = update(ours, "ours"), update(resources, "theirs")
    assert ours_updated == {**theirs_updated, "pk": "ours"}
    assert ours_updated["whole"] == 8 and ours_updated["added"] == ["x", Decimal("2")]

    with pytest.raises(dynamo.ConcurrentUpdate), dynamo.conditional_write():
        ours.delete_item(Key={"pk": "ours"}, ConditionExpression=Attr("whole").eq(0))

    queried = ours.query(KeyConditionExpression=Key("pk").eq("ours"))["Items"]
    assert queried == [ours_updated]
    assert resources.query(KeyConditionExpression=Key("pk").eq("ours"))["Items"] == queried


def test_a_store_builds_no_boto3_resource(tables, monkeypatch):
    def no_resource(*args, **kwargs):
        raise AssertionError("a boto3 resource was built")

    monkeypatch.setattr(boto3.session.Session, "resource", no_resource)
    dynamo.forget_resources()
    state = StateStore(tables["StateTable"])

    assert state.claim_log_refresh("j1", now=100.0, min_interval=5) is True
    assert state.claim_log_refresh("j1", now=101.0, min_interval=5) is False


def test_every_thread_uses_the_one_client_until_the_environment_changes(tables):
    main = dynamo.client()
    seen = {}

    def in_a_thread():
        seen["client"] = dynamo.client()
        seen["table"] = dynamo.table(tables["StateTable"])
        seen["item"] = seen["table"].get_item(Key={"pk": "none"}).get("Item")

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()

    assert seen["client"] is main and seen["table"] is dynamo.table(tables["StateTable"])
    assert seen["item"] is None
    dynamo.forget_resources()
    assert dynamo.client() is not main
