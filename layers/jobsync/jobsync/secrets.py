"""Secrets kept in AWS Secrets Manager rather than in the functions' environment.

Read through Powertools' parameters utility and cached per Lambda instance for
`MAX_AGE_SECONDS`: a warm instance sees a rotated secret within that time
without asking Secrets Manager on every call. Never logged: errors name the
secret's ARN and AWS's error code only.
"""

from __future__ import annotations

# How long a secret read is reused before Secrets Manager is asked again.
MAX_AGE_SECONDS = 300


class SecretUnavailable(Exception):
    pass


def secret_string(secret_arn: str, *, max_age: int | None = None) -> str:
    """The secret's string, read at most once per `max_age` seconds (default MAX_AGE_SECONDS) per instance."""
    # Imported here: only instances that need a secret pay for the Secrets Manager client.
    from aws_lambda_powertools.utilities.parameters import GetParameterError, get_secret
    from botocore.exceptions import BotoCoreError

    try:
        value = get_secret(secret_arn, max_age=MAX_AGE_SECONDS if max_age is None else max_age)
    except GetParameterError as exc:
        raise SecretUnavailable(f"could not read secret {secret_arn}: {_reason(exc)}") from exc
    except BotoCoreError as exc:  # e.g. no region to build the client in
        raise SecretUnavailable(f"could not read secret {secret_arn}: {type(exc).__name__}") from exc
    if not isinstance(value, str) or not value.strip():
        raise SecretUnavailable(f"secret {secret_arn} has no secret string")
    return value.strip()


def _reason(exc: Exception) -> str:
    """AWS's error code (or the error's type) behind Powertools' GetParameterError, which wraps them all."""
    from botocore.exceptions import ClientError

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ClientError):
        return cause.response.get("Error", {}).get("Code", "error")
    return type(cause).__name__ if cause is not None else "error"


def forget_secrets() -> None:
    """Drop every cached secret (and Powertools' clients): the next read asks Secrets Manager."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
