"""Publishing notifications to the SNS topic its subscribers (e-mail, SQS, HTTPS) listen to.

The endpoint comes from AWS_ENDPOINT_URL_SNS when set: the local stack serves
SNS's Publish itself (local/notify_topic.py), so this same code runs there.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jobsync.config import get_settings


class PublishFailed(Exception):
    """SNS did not take the message; the caller releases its claim so that a retry publishes."""


class Topic:
    def __init__(self, topic_arn: str) -> None:
        import boto3
        from botocore.config import Config

        self.topic_arn = topic_arn
        self._client: Any = boto3.client(
            "sns", config=Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
        )

    def publish(self, message: dict[str, Any], *, subject: str, attributes: dict[str, str]) -> str:
        """Publish `message` as JSON; `attributes` (string values) let subscriptions filter. The message id."""
        try:
            answer = self._client.publish(
                TopicArn=self.topic_arn,
                Message=json.dumps(message),
                Subject=subject,
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value} for name, value in attributes.items() if value
                },
            )
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the message was not published
            raise PublishFailed(type(exc).__name__) from exc
        return str(answer.get("MessageId", ""))


@lru_cache(maxsize=1)
def topic() -> Topic | None:
    """The notification topic; None when the deployment has none (notifications off)."""
    arn = get_settings().notify_topic_arn
    return Topic(arn) if arn else None
