"""DynamoDB failures, translated in one place: a lost race is ConcurrentUpdate, anything else StoreUnavailable."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from jobsync.domain.errors import StoreUnavailable
from jobsync.store import dynamo
from jobsync.store.connections import ConnectionStore
from jobsync.store.state import StateStore


def client_error(code: str, *reasons: str) -> ClientError:
    response = {"Error": {"Code": code, "Message": "refused"}}
    if reasons:
        response["CancellationReasons"] = [{"Code": reason} for reason in reasons]
    return ClientError(response, "TransactWriteItems")


def raised_by(block, error: Exception) -> BaseException:
    with pytest.raises(Exception) as caught, block():
        raise error
    return caught.value


@pytest.mark.parametrize(
    "error",
    [client_error("ProvisionedThroughputExceededException"), EndpointConnectionError(endpoint_url="https://x")],
)
def test_any_boto_error_becomes_store_unavailable_naming_only_its_type(error):
    translated = raised_by(dynamo.translated_errors, error)
    assert isinstance(translated, StoreUnavailable) and translated.__cause__ is error
    assert str(translated) == f"the job store did not answer: {type(error).__name__}"


def test_errors_that_are_not_boto_errors_pass_through():
    assert isinstance(raised_by(dynamo.translated_errors, KeyError("x")), KeyError)
    assert isinstance(raised_by(dynamo.conditional_write, KeyError("x")), KeyError)


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (client_error("ConditionalCheckFailedException"), True),
        (client_error("TransactionCanceledException", "None", "ConditionalCheckFailed"), True),
        (client_error("TransactionCanceledException", "TransactionConflict", "None"), True),
        (client_error("TransactionCanceledException", "None", "ThrottlingError"), False),
        (client_error("TransactionCanceledException", "ValidationError"), False),
        (client_error("ThrottlingException"), False),
        (client_error("ResourceNotFoundException"), False),
    ],
)
def test_a_write_lost_a_race_only_when_a_condition_failed_or_a_transaction_collided(error, lost):
    assert dynamo.lost_race(error) is lost
    outcome = raised_by(dynamo.conditional_write, error)
    assert isinstance(outcome, dynamo.ConcurrentUpdate if lost else StoreUnavailable)
    assert outcome.__cause__ is error


def test_a_conditional_write_that_cannot_reach_dynamodb_is_store_unavailable():
    error = EndpointConnectionError(endpoint_url="https://x")
    assert isinstance(raised_by(dynamo.conditional_write, error), StoreUnavailable)


# ---- the same classifier on moto's real answers ---------------------------------


def test_a_conditional_put_that_fails_lost_a_race(tables):
    table = dynamo.table(tables["StateTable"])
    table.put_item(Item={"pk": "k"}, ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(dynamo.ConcurrentUpdate) as caught, dynamo.conditional_write():
        table.put_item(Item={"pk": "k"}, ConditionExpression="attribute_not_exists(pk)")
    assert dynamo.lost_race(caught.value.__cause__)


def test_a_transaction_whose_condition_fails_lost_a_race_and_writes_nothing(tables):
    state = tables["StateTable"]
    dynamo.table(state).put_item(Item={"pk": "taken"})
    actions = [
        {"Put": {"TableName": state, "Item": {"pk": "free"}}},
        {"Put": {"TableName": state, "Item": {"pk": "taken"}, "ConditionExpression": "attribute_not_exists(pk)"}},
    ]
    with pytest.raises(dynamo.ConcurrentUpdate) as caught, dynamo.conditional_write():
        dynamo.client().transact_write_items(TransactItems=actions)
    reasons = [reason["Code"] for reason in caught.value.__cause__.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert "Item" not in dynamo.table(state).get_item(Key={"pk": "free"})


def test_a_write_dynamodb_refuses_for_another_reason_is_store_unavailable(tables):
    with pytest.raises(StoreUnavailable, match="ResourceNotFoundException"), dynamo.conditional_write():
        dynamo.table("no_such_table").put_item(Item={"pk": "k"}, ConditionExpression="attribute_not_exists(pk)")


def test_stores_answer_a_lost_race_and_translate_the_rest(tables):
    state = StateStore(tables["StateTable"])
    assert state.claim_log_refresh("j1", now=100.0, min_interval=5) is True
    assert state.claim_log_refresh("j1", now=101.0, min_interval=5) is False
    connections = ConnectionStore(tables["ConnectionsTable"], tables["StateTable"])
    assert connections.open("c1", "10.0.0.1", limit=1) is True
    assert connections.open("c2", "10.0.0.1", limit=1) is False
    assert connections.close("c1") is True and connections.close("c1") is False
    with pytest.raises(StoreUnavailable):
        StateStore("no_such_table").polling_preference()
