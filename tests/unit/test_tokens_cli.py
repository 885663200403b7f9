"""`jobsync token create|list|revoke` through typer's CliRunner over an httpx MockTransport: what it sends,
what it prints, and every failure as one line naming what to fix, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from jobsync_cli.app import app
from jobsync_cli.errors import CliError
from jobsync_cli.tokens import expiry

TOKEN = "jst_0123456789ab_" + "s" * 43
ENV = {"JOBSYNC_URL": "http://jobsync.test", "JOBSYNC_TOKEN": "admin-token", "JOBSYNC_DEBUG": None}


class FakeApi:
    """The token routes of a jobsync API, with what the command sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.tokens: dict[str, dict[str, Any]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != "Bearer admin-token":
            return httpx.Response(401, json={"error": "unauthorized", "message": "send a valid token"})
        path, method = request.url.path, request.method
        if (method, path) == ("POST", "/api/tokens"):
            body = json.loads(request.content)
            meta = {"token_id": "0123456789ab", "created_at": "2025-03-12T19:03:58Z", "last_used_at": None}
            meta |= {"name": body["name"], "scope": body["scope"], "expires_at": body.get("expires_at")}
            self.tokens[meta["token_id"]] = meta
            return httpx.Response(200, json={**meta, "token": TOKEN})
        if (method, path) == ("GET", "/api/tokens"):
            return httpx.Response(200, json={"tokens": list(self.tokens.values())})
        if method == "DELETE" and path.startswith("/api/tokens/"):
            token_id = path.rsplit("/", 1)[1]
            if token_id not in self.tokens:
                return httpx.Response(
                    404, json={"error": "token_not_found", "message": f"no token with id {token_id!r}"}
                )
            return httpx.Response(200, json={"token": self.tokens.pop(token_id)})
        return httpx.Response(404, json={"error": "not_found", "message": f"no route for {method} {path}"})


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


def run(handler: Any, *args: str, env: dict[str, str | None] | None = None):
    return CliRunner().invoke(
        app, list(args), env={**ENV, **(env or {})}, obj={"transport": httpx.MockTransport(handler)}
    )


def failed(result, code: int = 1) -> str:
    """The one line a failure printed."""
    assert result.exit_code == code, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jobsync: ")
    return lines[0]


# ------------------------------------------------------------------------------ what works


def test_create_prints_the_token_alone_on_stdout(fake: FakeApi) -> None:
    result = run(fake, "token", "create", "--name", "ci", "--scope", "read", "--expires", "2030-01-01")
    assert result.exit_code == 0, result.output
    assert result.stdout == TOKEN + "\n"
    assert "0123456789ab" in result.stderr and "shown this once" in result.stderr
    (request,) = fake.requests
    assert (request.method, request.url) == ("POST", "http://jobsync.test/api/tokens")
    assert json.loads(request.content) == {"name": "ci", "scope": "read", "expires_at": "2030-01-01T00:00:00Z"}


def test_create_as_json(fake: FakeApi) -> None:
    result = run(fake, "token", "create", "--name", "ops", "--scope", "operate", "--json")
    assert result.exit_code == 0
    answer = json.loads(result.stdout)
    assert answer["token"] == TOKEN and answer["scope"] == "operate" and answer["expires_at"] is None


def test_list_shows_every_token_without_secrets(fake: FakeApi) -> None:
    run(fake, "token", "create", "--name", "ci-[bold]", "--scope", "read")
    result = run(fake, "token", "list")
    assert result.exit_code == 0
    assert "0123456789ab" in result.stdout and "ci-[bold]" in result.stdout  # names are not rich markup
    assert "never" in result.stdout and TOKEN not in result.stdout
    listed = json.loads(run(fake, "token", "list", "--json").stdout)
    assert [token["token_id"] for token in listed] == ["0123456789ab"]


def test_list_of_nothing_says_so(fake: FakeApi) -> None:
    result = run(fake, "token", "list")
    assert result.exit_code == 0 and result.stdout == "" and "no tokens" in result.stderr


def test_revoke(fake: FakeApi) -> None:
    run(fake, "token", "create", "--name", "ci", "--scope", "read")
    result = run(fake, "token", "revoke", "0123456789ab")
    assert result.exit_code == 0 and "revoked token 0123456789ab" in result.stderr
    assert fake.requests[-1].method == "DELETE" and fake.requests[-1].url.path == "/api/tokens/0123456789ab"
    assert failed(run(fake, "token", "revoke", "0123456789ab")) == "jobsync: 404: no token with id '0123456789ab'"


NOW = datetime(2025, 3, 12, 19, 3, 58, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", "2025-04-11T19:03:58Z"),
        ("12h", "2025-03-13T07:03:58Z"),
        ("90m", "2025-03-12T20:33:58Z"),
        ("2w", "2025-03-26T19:03:58Z"),
        ("2030-01-01", "2030-01-01T00:00:00Z"),
        ("2030-01-01T12:00:00+02:00", "2030-01-01T10:00:00Z"),
        ("2030-01-01T12:00:00Z", "2030-01-01T12:00:00Z"),
    ],
)
def test_expiry(text: str, expected: str) -> None:
    assert expiry(text, NOW) == expected


def test_a_bad_expiry_names_the_option(fake: FakeApi) -> None:
    line = failed(run(fake, "token", "create", "--name", "ci", "--scope", "read", "--expires", "soon"), code=2)
    assert "--expires 'soon'" in line
    assert fake.requests == []
    with pytest.raises(CliError):
        expiry("10y")


# ---------------------------------------------------------------------------- what fails


def test_without_a_token_it_says_which_variable_to_set(fake: FakeApi) -> None:
    line = failed(run(fake, "token", "list", env={"JOBSYNC_TOKEN": None}), code=2)
    assert line.startswith("jobsync: JOBSYNC_TOKEN is not set")
    assert fake.requests == []


def test_a_refused_token(fake: FakeApi) -> None:
    line = failed(run(fake, "token", "list", env={"JOBSYNC_TOKEN": "wrong"}))
    assert line == "jobsync: 401: the API refused the token: check JOBSYNC_TOKEN"


def test_too_small_a_scope_says_which_scope() -> None:
    message = "POST /api/tokens needs a token with the 'admin' scope; this token has 'read'"
    result = run(lambda request: httpx.Response(403, json={"error": "forbidden", "message": message}), "token", "list")
    assert failed(result) == f"jobsync: 403: {message}"


def test_an_api_that_cannot_be_reached() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    line = failed(run(refuse, "token", "list", env={"JOBSYNC_URL": None}))
    assert line == "jobsync: cannot reach http://127.0.0.1:8001: is make run up? (JOBSYNC_URL says where the API is)"


def test_an_api_that_does_not_answer() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    assert "did not answer GET /api/tokens" in failed(run(hang, "token", "list"))


@pytest.mark.parametrize(
    ("answer", "line"),
    [
        (httpx.Response(502, text="<html>Bad Gateway</html>"), "jobsync: 502: Bad Gateway"),
        (httpx.Response(429, json={"message": "Too Many Requests"}), "jobsync: 429: Too Many Requests"),
        (httpx.Response(200, text="<html>"), "jobsync: 200: the API answered something that is not JSON"),
        (
            httpx.Response(503, json={"error": "store_unavailable", "message": "the job store did not answer"}),
            "jobsync: 503: the job store did not answer",
        ),
    ],
)
def test_api_failures_are_one_line_with_the_status(answer: httpx.Response, line: str) -> None:
    assert failed(run(lambda request: answer, "token", "list")) == line


def test_an_unexpected_answer_is_one_line_too() -> None:
    result = run(lambda request: httpx.Response(200, json={"tokens": "not a list"}), "token", "list")
    assert failed(result).startswith("jobsync: unexpected TypeError")


def test_a_bad_url_says_which_variable(fake: FakeApi) -> None:
    line = failed(run(fake, "token", "list", env={"JOBSYNC_URL": "jobsync.test"}), code=2)
    assert line.startswith("jobsync: JOBSYNC_URL must start with http:// or https://")


def test_a_scope_that_does_not_exist_is_a_usage_error(fake: FakeApi) -> None:
    result = run(fake, "token", "create", "--name", "ci", "--scope", "root")
    assert result.exit_code == 2 and "Traceback" not in result.output and fake.requests == []
