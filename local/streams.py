"""Reads a DynamoDB stream the way Lambda's event source mapping does, for the local stack and tests.

The local DynamoDB server (local/dynamodb_server.py) drops a shard's records once a GetRecords call
comes with an iterator past them, so memory stays flat: one reader per stream, reading forward only,
as this one does.
"""

from __future__ import annotations

from typing import Any


class StreamReader:
    """Hands out every new record of a table's stream once, in order, shard by shard."""

    def __init__(self, streams_client: Any, stream_arn: str, from_start: bool = False) -> None:
        self._client = streams_client
        self._arn = stream_arn
        self._start = "TRIM_HORIZON" if from_start else "LATEST"
        self._iterators: dict[str, str | None] = {}
        # Like an event source mapping: the position is fixed when the reader is created;
        # shards that appear later are read from their start.
        self._refresh_shards()
        self._start = "TRIM_HORIZON"

    @classmethod
    def for_table(
        cls, dynamodb_client: Any, streams_client: Any, table_name: str, from_start: bool = False
    ) -> "StreamReader":
        arn = dynamodb_client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        return cls(streams_client, arn, from_start)

    def _refresh_shards(self) -> None:
        shards = self._client.describe_stream(StreamArn=self._arn)["StreamDescription"].get("Shards", [])
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._client.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard_id, ShardIteratorType=self._start
                )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        self._refresh_shards()
        records: list[dict[str, Any]] = []
        for shard_id, iterator in list(self._iterators.items()):
            while iterator:
                answer = self._client.get_records(ShardIterator=iterator, Limit=1000)
                records.extend(answer.get("Records", []))
                iterator = answer.get("NextShardIterator")
                if not answer.get("Records"):
                    break
            self._iterators[shard_id] = iterator
        return [dict(record, eventSource="aws:dynamodb") for record in records]
