"""The WebSocket pusher: one signed POST per message, API Gateway's answers mapped to gone / failed / sent."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from jobsync.push import websocket
from jobsync.push.websocket import ConnectionGone, PostSigner, PushFailed, WebSocketPusher

ENDPOINT = "https://abc123.execute-api.eu-west-1.amazonaws.com/live"


@pytest.fixture
def answers(monkeypatch):
    """The statuses (or exceptions) the management API answers, in order; every request sent is kept."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    script: list[int | Exception] = []
    sent: list = []

    def send(request):
        sent.append(request)
        answer = script.pop(0) if script else 200
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(status_code=answer)

    monkeypatch.setattr(websocket, "http_send", lambda pool_size: send)
    return SimpleNamespace(script=script, sent=sent, pusher=WebSocketPusher(ENDPOINT + "/", pool_size=8))


def test_a_post_is_one_sigv4_signed_post_to_the_connection(answers):
    answers.pusher.post("L0SM9cOFvHcCIhw=", b'{"type":"job_status_changed"}')

    (request,) = answers.sent
    assert request.method == "POST"
    assert request.url == ENDPOINT + "/@connections/L0SM9cOFvHcCIhw%3D"
    assert request.body == b'{"type":"job_status_changed"}'
    authorization = request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization and "Signature=" in authorization


def test_410_means_the_client_is_gone_and_is_not_retried(answers):
    answers.script.append(410)

    with pytest.raises(ConnectionGone):
        answers.pusher.post("gone", b"{}")
    assert len(answers.sent) == 1


@pytest.mark.parametrize("first", [429, 500, 503, ConnectionResetError("reset")])
def test_throttling_server_trouble_and_a_dropped_connection_get_one_more_try(answers, first):
    answers.script.append(first)

    answers.pusher.post("conn", b"{}")

    assert len(answers.sent) == 2


def test_a_second_failure_or_a_refusal_is_a_failed_push(answers):
    answers.script.extend([503, 503])
    with pytest.raises(PushFailed, match="503"):
        answers.pusher.post("conn", b"{}")

    answers.script.append(403)
    with pytest.raises(PushFailed, match="403"):
        answers.pusher.post("conn", b"{}")
    assert len(answers.sent) == 3  # the refusal was not retried

    answers.script.extend([TimeoutError(), TimeoutError()])
    with pytest.raises(PushFailed, match="TimeoutError"):
        answers.pusher.post("conn", b"{}")


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLE"])
def test_the_post_is_signed_exactly_as_botocores_sigv4_signer_signs_it(monkeypatch, token):
    import botocore.auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    now = datetime(2026, 11, 30, 9, 15, 42, tzinfo=timezone.utc)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    body = b'{"type":"job_status_changed","job_id":"r8abc"}'
    path = "/live/@connections/L0SM9cOFvHcCIhw%3D"

    ours = PostSigner(credentials, "eu-west-1").headers("abc123.execute-api.eu-west-1.amazonaws.com", path, body, now)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    request = AWSRequest(method="POST", url=ENDPOINT + path.removeprefix("/live"), data=body)
    request.headers["Content-Type"] = "application/json"
    SigV4Auth(credentials, "execute-api", "eu-west-1").add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"] == "20261130T091542Z"
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token") == token


@pytest.fixture
def management_api():
    """A local HTTP server standing in for API Gateway's management API: it keeps each POST; `gone` answer 410."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    posts: list[tuple[str, dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, dict(self.headers), body))
            self.send_response(410 if self.path.endswith("/gone") else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live", posts
    server.shutdown()


def test_a_post_reaches_a_real_http_server_over_the_pooled_session(monkeypatch, management_api):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    url, posts = management_api
    pusher = WebSocketPusher(url, pool_size=4)

    pusher.post("L0SM9cOFvHcCIhw=", b'{"type":"job_status_changed"}')
    with pytest.raises(ConnectionGone):
        pusher.post("gone", b"{}")

    (path, headers, body), _ = posts
    assert path == "/live/@connections/L0SM9cOFvHcCIhw%3D" and body == b'{"type":"job_status_changed"}'
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
