"""The tokens table under moto, created from template.yaml: rows by id, the listing index without digests,
revocation, and the conditional record of last use."""

from __future__ import annotations

import boto3
import pytest
from botocore.client import BaseClient

from jobsync.auth import Scope, token_digest
from jobsync.store.dynamo import ConcurrentUpdate
from jobsync.store.tokens import StoredToken, TokenMetadata, TokenStore
from tests.conftest import REGION


def stored(token_id: str, created_at: str, *, scope: Scope = Scope.READ, expires_at: str | None = None) -> StoredToken:
    meta = TokenMetadata(token_id, f"token {token_id}", scope, created_at, None, expires_at)
    return StoredToken(meta, token_digest(f"secret of {token_id}"))


@pytest.fixture
def store(tables) -> TokenStore:
    return TokenStore(tables["TokensTable"])


def raw_item(tables, token_id: str) -> dict | None:
    table = boto3.resource("dynamodb", region_name=REGION).Table(tables["TokensTable"])
    return table.get_item(Key={"token_id": token_id}).get("Item")


def test_a_token_is_kept_by_its_id_with_its_digest(store: TokenStore, tables) -> None:
    token = stored("0123456789ab", "2025-03-12T19:03:58Z", scope=Scope.ADMIN, expires_at="2025-04-01T00:00:00Z")
    store.create(token)
    assert store.get("0123456789ab") == token
    assert store.get("ba9876543210") is None
    item = raw_item(tables, "0123456789ab")
    assert item["digest"] == token_digest("secret of 0123456789ab") and "secret" not in str(item.values())
    assert item["purge_at"] == 1743465600  # DynamoDB's TTL removes the row after its expiry


def test_an_id_is_never_overwritten(store: TokenStore) -> None:
    store.create(stored("0123456789ab", "2025-03-12T19:03:58Z"))
    with pytest.raises(ConcurrentUpdate):
        store.create(stored("0123456789ab", "2025-03-12T19:04:00Z", scope=Scope.ADMIN))
    assert store.get("0123456789ab").metadata.scope is Scope.READ


def test_the_listing_comes_from_the_index_oldest_first_without_digests(store: TokenStore, monkeypatch) -> None:
    for token_id, created in (("00000000000b", "2025-03-12T19:05:00Z"), ("00000000000a", "2025-03-12T19:04:00Z")):
        store.create(stored(token_id, created))

    calls: list[tuple[str, dict]] = []
    make_api_call = BaseClient._make_api_call

    def recorded(client, operation_name, api_params):
        calls.append((operation_name, api_params))
        return make_api_call(client, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    listed = store.all()
    assert [meta.token_id for meta in listed] == ["00000000000a", "00000000000b"]
    assert [(name, params.get("IndexName")) for name, params in calls] == [("Query", "by_created")]


def test_the_index_projects_no_digest(tables, store: TokenStore) -> None:
    store.create(stored("0123456789ab", "2025-03-12T19:03:58Z"))
    client = boto3.client("dynamodb", region_name=REGION)
    items = client.query(
        TableName=tables["TokensTable"],
        IndexName="by_created",
        KeyConditionExpression="listing = :l",
        ExpressionAttributeValues={":l": {"S": "token"}},
    )["Items"]
    assert len(items) == 1 and "digest" not in items[0]


def test_revoking_deletes_the_row_once(store: TokenStore) -> None:
    token = stored("0123456789ab", "2025-03-12T19:03:58Z")
    store.create(token)
    assert store.delete("0123456789ab") == token.metadata
    assert store.delete("0123456789ab") is None
    assert store.get("0123456789ab") is None and store.all() == []


def test_last_use_is_written_once_a_minute_and_never_revives_a_revoked_token(store: TokenStore, tables) -> None:
    store.create(stored("0123456789ab", "2025-03-12T19:03:58Z"))
    assert store.touch("0123456789ab", "2025-03-12T19:10:00Z", unless_since="2025-03-12T19:09:00Z")
    # Another instance, 20 s later: the row says it was used within the minute.
    assert not store.touch("0123456789ab", "2025-03-12T19:10:20Z", unless_since="2025-03-12T19:09:20Z")
    assert store.get("0123456789ab").metadata.last_used_at == "2025-03-12T19:10:00Z"
    assert store.touch("0123456789ab", "2025-03-12T19:11:01Z", unless_since="2025-03-12T19:10:01Z")
    assert store.get("0123456789ab").metadata.last_used_at == "2025-03-12T19:11:01Z"

    store.delete("0123456789ab")
    assert not store.touch("0123456789ab", "2025-03-12T19:13:00Z", unless_since="2025-03-12T19:12:00Z")
    assert raw_item(tables, "0123456789ab") is None
