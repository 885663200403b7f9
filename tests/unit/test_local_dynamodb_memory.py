"""The local DynamoDB server keeps nothing of what it was asked but the tables themselves.

moto's models append every instance they make to a class list for moto's dashboard (`instances_tracked`):
every item written, copied for a transaction or read, every stream record and shard iterator, for the life
of the process. The local stack grew by 5-7 MB a minute under a busy simulator for it (126 MB to 352 MB in
42 minutes; tests/soak/memwatch.py measures it). The server turns that tracking off.
"""

from __future__ import annotations

from pathlib import Path

import boto3
from moto.core.base_backend import BackendDict
from moto.core.model_instances import model_data

from local.dynamodb_server import LocalDynamoDB


def tracked_instances() -> dict[str, int]:
    return {
        name: len(model.instances_tracked)  # type: ignore[attr-defined]
        for models in model_data.values()
        for name, model in models.items()
        if getattr(model, "instances_tracked", None)
    }


def test_writes_reads_and_stream_reads_leave_no_tracked_instance(tmp_path: Path) -> None:
    server = LocalDynamoDB(tmp_path)
    url = server.start()
    try:
        client = boto3.client(
            "dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="x"
        )
        streams = boto3.client(
            "dynamodbstreams",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="x",
        )
        table = client.create_table(
            TableName="memory-test",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        server.restore()
        stream_arn = table["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        for number in range(50):
            key = {"pk": {"S": f"job-{number % 10}"}}
            client.put_item(TableName="memory-test", Item={**key, "n": {"N": str(number)}})
            client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": "memory-test",
                            "Key": key,
                            "UpdateExpression": "SET m = :m",
                            "ExpressionAttributeValues": {":m": {"N": str(number)}},
                        }
                    }
                ]
            )
            assert client.get_item(TableName="memory-test", Key=key)["Item"]["m"] == {"N": str(number)}
            answer = streams.get_records(ShardIterator=iterator)
            iterator = answer["NextShardIterator"]

        assert client.scan(TableName="memory-test")["Count"] == 10
        assert tracked_instances() == {}
    finally:
        server.stop()
        BackendDict.reset()
