"""API tokens in their own table: one row per token, keyed by its id, holding its sha256 digest.

Listing reads the `by_created` index (every row shares its partition, `listing`),
which projects everything but the digest: a listing never even sees one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from boto3.dynamodb.conditions import Key

from jobsync.auth import Scope
from jobsync.store import dynamo

_LISTING = "token"
_INDEX = "by_created"


@dataclass(frozen=True)
class TokenMetadata:
    token_id: str
    name: str
    scope: Scope
    created_at: str  # UTC ISO 8601, like every time below
    last_used_at: str | None
    expires_at: str | None


@dataclass(frozen=True)
class StoredToken:
    metadata: TokenMetadata
    digest: str


def _metadata(item: dict[str, Any]) -> TokenMetadata:
    return TokenMetadata(
        token_id=item["token_id"],
        name=item["name"],
        scope=Scope(item["scope"]),
        created_at=item["created_at"],
        last_used_at=item.get("last_used_at"),
        expires_at=item.get("expires_at"),
    )


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


class TokenStore:
    def __init__(self, tokens_table: str) -> None:
        self._table_name = tokens_table

    @property
    def _table(self) -> Any:
        return dynamo.table(self._table_name)

    def create(self, token: StoredToken) -> None:
        meta = token.metadata
        item: dict[str, Any] = {
            "token_id": meta.token_id,
            "digest": token.digest,
            "name": meta.name,
            "scope": meta.scope.value,
            "created_at": meta.created_at,
            "last_used_at": meta.last_used_at,
            "expires_at": meta.expires_at,
            "listing": _LISTING,
        }
        if meta.expires_at:
            # DynamoDB's TTL deletes an expired row some time later; the check refuses it from expires_at on.
            item["purge_at"] = _epoch(meta.expires_at)
        with dynamo.conditional_write():
            self._table.put_item(Item=dynamo.to_dynamo(item), ConditionExpression="attribute_not_exists(token_id)")

    def get(self, token_id: str) -> StoredToken | None:
        with dynamo.translated_errors():
            item = self._table.get_item(Key={"token_id": token_id}).get("Item")
        return StoredToken(_metadata(item), item["digest"]) if item else None

    def all(self) -> list[TokenMetadata]:
        """Every token, oldest first, from the index (never a Scan)."""
        query: dict[str, Any] = {"IndexName": _INDEX, "KeyConditionExpression": Key("listing").eq(_LISTING)}
        found: list[TokenMetadata] = []
        while True:
            with dynamo.translated_errors():
                answer = self._table.query(**query)
            found.extend(_metadata(item) for item in answer.get("Items", []))
            if not answer.get("LastEvaluatedKey"):
                return found
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def delete(self, token_id: str) -> TokenMetadata | None:
        """Forget a token; its metadata, or None when there was no such token."""
        with dynamo.translated_errors():
            old = self._table.delete_item(Key={"token_id": token_id}, ReturnValues="ALL_OLD").get("Attributes")
        return _metadata(old) if old else None

    def touch(self, token_id: str, now: str, unless_since: str) -> bool:
        """Set last_used_at to `now` unless it is already `unless_since` or later; True when written.

        The condition keeps writes to one a minute per token however many instances see it, and never
        brings back a token revoked in between.
        """
        try:
            with dynamo.conditional_write():
                self._table.update_item(
                    Key={"token_id": token_id},
                    UpdateExpression="SET last_used_at = :now",
                    ConditionExpression="attribute_exists(token_id) AND "
                    "(attribute_not_exists(last_used_at) OR last_used_at < :since)",
                    ExpressionAttributeValues={":now": now, ":since": unless_since},
                )
        except dynamo.ConcurrentUpdate:
            return False
        return True
