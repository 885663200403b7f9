"""What the stores of small `pk`-keyed items in one table share: the table, and one item read consistently.

StateStore, NotificationStore, ImportStore and LogStore (all over the state table) build on it, so the
read every conditional write of theirs starts from is written once.
"""

from __future__ import annotations

from typing import Any

from jobsync.store import dynamo


class KeyedItems:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return dynamo.table(self._table_name)

    def _get(self, pk: str) -> dict[str, Any] | None:
        """The item as DynamoDB holds it (numbers as Decimal), read consistently; None when there is none."""
        with dynamo.translated_errors():
            item: dict[str, Any] | None = self._table.get_item(Key={"pk": pk}, ConsistentRead=True).get("Item")
            return item

    def _get_plain(self, pk: str) -> dict[str, Any] | None:
        """The item with DynamoDB's Decimals made ints and floats again; None when there is none."""
        item = self._get(pk)
        return dynamo.from_dynamo(item) if item else None
