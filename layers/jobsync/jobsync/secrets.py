"""Secrets kept in AWS Secrets Manager rather than in the functions' environment.

Read once per Lambda instance (a rotated secret reaches new instances), and
never logged: errors name the secret's ARN and AWS's error code only.
"""

from __future__ import annotations

from functools import lru_cache


class SecretUnavailable(Exception):
    pass


@lru_cache(maxsize=4)
def secret_string(secret_arn: str) -> str:
    import boto3  # only instances that need a secret pay for the client
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn).get("SecretString")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SecretUnavailable(f"could not read secret {secret_arn}: {code}") from exc
    except BotoCoreError as exc:
        raise SecretUnavailable(f"could not read secret {secret_arn}: {type(exc).__name__}") from exc
    if not value or not value.strip():
        raise SecretUnavailable(f"secret {secret_arn} has no secret string")
    return value.strip()
