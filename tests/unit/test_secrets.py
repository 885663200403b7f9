"""Secrets Manager reads under moto: cached for a while, a rotated secret seen after that, errors without values."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws
from moto.core.config import default_user_config

from jobsync import secrets, wiring
from jobsync.providers.base import ProviderAuthError
from jobsync.providers.registry import provider_client
from jobsync.secrets import SecretUnavailable, secret_string

REGION = "us-east-1"


@pytest.fixture
def secretsmanager(aws_env):
    """Secrets Manager under moto; nothing cached before or after.

    boto3's session is kept (moto would reset it by default, and each test would load the service models
    again: most of a test's CPU); a fresh moto still holds no secret of another test."""
    with mock_aws(config={"core": {**default_user_config["core"], "reset_boto3_session": False}}):
        wiring.reset()
        yield boto3.client("secretsmanager", region_name=REGION)
        wiring.reset()


def _rotate(client, arn: str, value: str) -> None:
    client.put_secret_value(SecretId=arn, SecretString=value)


def test_a_secret_is_read_once_and_reused_within_its_max_age(secretsmanager):
    arn = secretsmanager.create_secret(Name="token", SecretString=" r8_first\n")["ARN"]
    assert secret_string(arn) == "r8_first"
    _rotate(secretsmanager, arn, "r8_second")
    assert secret_string(arn) == "r8_first"  # cached: Secrets Manager is not asked on every call
    assert secrets.MAX_AGE_SECONDS == 300


def test_a_rotated_secret_is_seen_once_the_cached_one_is_older_than_max_age(secretsmanager):
    arn = secretsmanager.create_secret(Name="token", SecretString="r8_first")["ARN"]
    assert secret_string(arn, max_age=0) == "r8_first"
    _rotate(secretsmanager, arn, "r8_second")
    assert secret_string(arn, max_age=0) == "r8_second"


def test_wiring_reset_forgets_cached_secrets(secretsmanager):
    arn = secretsmanager.create_secret(Name="token", SecretString="r8_first")["ARN"]
    assert secret_string(arn) == "r8_first"
    _rotate(secretsmanager, arn, "r8_second")
    wiring.reset()
    assert secret_string(arn) == "r8_second"


def test_a_missing_secret_names_the_arn_and_aws_error_code_and_is_not_cached(secretsmanager):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:token"
    with pytest.raises(SecretUnavailable) as caught:
        secret_string(arn)
    assert str(caught.value) == f"could not read secret {arn}: ResourceNotFoundException"
    created = secretsmanager.create_secret(Name="token", SecretString="r8_now_there")["ARN"]
    assert secret_string(created) == "r8_now_there"


@pytest.mark.parametrize("stored", [{"SecretString": "   "}, {"SecretBinary": b"r8_binary_value"}])
def test_a_secret_without_a_string_is_refused_without_showing_its_value(secretsmanager, stored):
    arn = secretsmanager.create_secret(Name="token", **stored)["ARN"]
    with pytest.raises(SecretUnavailable) as caught:
        secret_string(arn)
    assert str(caught.value) == f"secret {arn} has no secret string"
    assert "r8_binary_value" not in repr(caught.value)


def test_a_warm_provider_client_sends_the_rotated_token(secretsmanager, replicate, monkeypatch):
    arn = secretsmanager.create_secret(Name="token", SecretString="r8_first")["ARN"]
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    monkeypatch.setenv("REPLICATE_API_TOKEN_SECRET_ARN", arn)
    monkeypatch.setattr(secrets, "MAX_AGE_SECONDS", 0)  # every read finds the cached token expired
    wiring.reset()
    replicate.token = "r8_first"
    client = provider_client()
    assert client.account().username == "acme"

    _rotate(secretsmanager, arn, "r8_second")
    replicate.token = "r8_second"  # Replicate no longer takes the first token
    assert provider_client() is client
    assert client.account().username == "acme"


def test_an_unreadable_secret_fails_the_call_not_the_client(secretsmanager, replicate, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    monkeypatch.setenv("REPLICATE_API_TOKEN_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone")
    wiring.reset()
    client = provider_client()
    with pytest.raises(ProviderAuthError, match="ResourceNotFoundException"):
        client.account()
    assert sum(replicate.requests.values()) == 0
