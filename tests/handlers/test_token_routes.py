"""POST/GET/DELETE /api/tokens through their handlers: a token is shown once, listed without secrets, works
with its scope, and stops working when revoked (here at once, on other instances within 60 s)."""

from __future__ import annotations

import re

import pytest

from jobsync import wiring
from jobsync.services import tokens as token_service
from tests.conftest import load_event
from tests.handlers.test_scopes import call

TOKEN_FORM = re.compile(r"jst_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def create(api, **body):
    return api.call("create_token", body=body)


def test_a_token_is_shown_once_and_listed_without_secrets(api) -> None:
    status, created = create(api, name="ci", scope="read", expires_at="2099-01-01T00:00:00+02:00")
    assert status == 200
    assert TOKEN_FORM.fullmatch(created["token"]) and created["token_id"] in created["token"]
    assert created["name"] == "ci" and created["scope"] == "read"
    assert created["expires_at"] == "2098-12-31T22:00:00Z"  # kept in UTC
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["created_at"])
    assert created["last_used_at"] is None

    status, listed = api.call("list_tokens")
    assert status == 200
    assert listed == {"tokens": [{key: value for key, value in created.items() if key != "token"}]}
    assert created["token"] not in str(listed) and "digest" not in str(listed)


def test_an_issued_token_works_with_its_scope_and_records_its_use(api) -> None:
    token = create(api, name="dashboard", scope="read")[1]["token"]
    assert call("metrics", token)[0] == 200
    assert call("sync_jobs", token)[0] == 403
    (listed,) = api.call("list_tokens")[1]["tokens"]
    assert listed["last_used_at"] is not None


def test_an_issued_admin_token_manages_tokens(api) -> None:
    admin = create(api, name="me", scope="admin")[1]["token"]
    event = load_event("create_token")
    event["body"] = '{"name": "ci", "scope": "operate"}'
    status, created = call("create_token", admin, event)
    assert status == 200 and created["scope"] == "operate"


def test_revoking_refuses_the_token_here_at_once(api) -> None:
    created = create(api, name="ci", scope="operate")[1]
    assert call("metrics", created["token"])[0] == 200

    status, revoked = api.call("revoke_token", path={"token_id": created["token_id"]})
    assert status == 200 and revoked["token"]["token_id"] == created["token_id"]
    assert "token" not in revoked["token"]
    status, body = call("metrics", created["token"])
    assert (status, body["error"]) == (401, "unauthorized")
    assert api.call("list_tokens")[1] == {"tokens": []}

    status, body = api.call("revoke_token", path={"token_id": created["token_id"]})
    assert (status, body["error"]) == (404, "token_not_found")


def test_a_token_revoked_elsewhere_stops_working_within_60_seconds(api, monkeypatch) -> None:
    """This instance checked the token a moment ago; another instance revokes it."""
    now = [1_900_000_000.0]
    monkeypatch.setattr(token_service.authority(), "clock", lambda: now[0])
    created = create(api, name="ci", scope="read")[1]
    assert call("metrics", created["token"])[0] == 200

    wiring.token_store().delete(created["token_id"])  # the other instance's revoke: this one's cache stays
    now[0] += 59
    assert call("metrics", created["token"])[0] == 200
    now[0] += 1
    assert call("metrics", created["token"])[0] == 401


def test_an_expired_token_is_refused(api, monkeypatch) -> None:
    now = [1_900_000_000.0]
    monkeypatch.setattr(token_service.authority(), "clock", lambda: now[0])
    created = create(api, name="short", scope="read", expires_at="2030-03-17T17:47:00Z")[1]  # 1_900_000_020
    assert call("metrics", created["token"])[0] == 200
    now[0] += 20
    assert call("metrics", created["token"])[0] == 401


@pytest.mark.parametrize(
    "body",
    [
        {"name": "ci", "scope": "root"},
        {"name": "", "scope": "read"},
        {"name": "x" * 65, "scope": "read"},
        {"name": "line\nbreak", "scope": "read"},
        {"scope": "read"},
        {"name": "ci"},
        {"name": "ci", "scope": "read", "expires_at": "2001-01-01T00:00:00Z"},  # the past
        {"name": "ci", "scope": "read", "expires_at": "2099-01-01T00:00:00"},  # no time zone
        {"name": "ci", "scope": "read", "expires_at": "soon"},
        {"name": "ci", "scope": "read", "token": "jst_0123456789ab_" + "x" * 43},  # no choosing one's token
    ],
)
def test_a_bad_request_is_a_400_and_creates_nothing(api, body) -> None:
    status, answer = create(api, **body)
    assert (status, answer["error"]) == (400, "invalid_input"), answer
    assert api.call("list_tokens")[1] == {"tokens": []}


@pytest.mark.parametrize("token_id", ["nope", "0123456789ab", "0123456789AB", "x" * 64])
def test_revoking_an_unknown_token_is_a_404(api, token_id) -> None:
    status, body = api.call("revoke_token", path={"token_id": token_id})
    assert (status, body["error"]) == (404, "token_not_found")
