"""`make run`'s stack as a user meets it: a real HTTP server, a real WebSocket, the simulator, moto."""

from __future__ import annotations

import asyncio
import json
import re
import time

import boto3
import httpx
import pytest
import websockets
from botocore.config import Config

from tests import stack_process
from tests.e2e.conftest import SECRET
from tests.stack_process import (
    PATIENCE_SECONDS,
    REQUEST_SECONDS,
    LocalStack,
    api,
    fresh_source_ip,
    send_signed_webhook,
    sync,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(shared_stack) -> LocalStack:
    return shared_stack


def request(method: str, url: str, **kwargs) -> httpx.Response:
    """A request without the token, as a browser or a stranger makes it."""
    return stack_process.request(method, url, **kwargs)


def signed_webhook(stack, payload: dict, webhook_id: str) -> httpx.Response:
    return send_signed_webhook(stack.url, SECRET, payload, webhook_id)


def connect(stack: LocalStack, source_ip: str, token: str | None = None):
    """A WebSocket to the stack from `source_ip` (see fresh_source_ip), with the stack's token by default."""
    url = f"{stack.ws_url}?token={token or stack.token}"
    return websockets.connect(url, local_addr=(source_ip, 0), open_timeout=PATIENCE_SECONDS)


async def connect_once_a_slot_is_free(stack: LocalStack, source_ip: str):
    """The next socket from `source_ip`, once a closed one's $disconnect has freed its slot."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        try:
            return await connect(stack, source_ip)
        except websockets.InvalidStatus:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


def prediction(job_id: str, status: str) -> dict:
    return {
        "id": job_id,
        "model": "e2e/trainer",
        "status": status,
        "created_at": "2026-11-28T10:00:00Z",
        "started_at": "2026-11-28T10:00:05Z" if status != "starting" else None,
        "completed_at": "2026-11-28T10:10:05Z" if status == "succeeded" else None,
        "metrics": {"predict_time": 600.0} if status == "succeeded" else {},
        "logs": "Step 10/100 - loss: 0.5",
        "error": None,
        "output": None,
    }


def test_health_dashboard_and_auth(stack):
    assert request("GET", f"{stack.url}/api/health").json() == {"status": "ok"}
    page = request("GET", f"{stack.url}/")
    assert page.status_code == 200 and "Sync" in page.text and "text/html" in page.headers["content-type"]
    script = request("GET", f"{stack.url}/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    unauthorized = request("GET", f"{stack.url}/api/cloud/jobs")
    assert unauthorized.status_code == 401 and unauthorized.json()["error"] == "unauthorized"
    assert request("GET", f"{stack.url}/api/cloud/jobs", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api(stack, "GET", "/api/openapi.json").json()["paths"]["/api/cloud/jobs/sync"]["post"]


def test_sync_then_list_then_inline_progress(stack):
    # The first sync stores the newest pages and answers; the rest of the simulator's history is imported
    # in the background, and later syncs say so until it is all in. Another test on this shared stack may
    # have synced it already: what is asserted holds whatever ran before.
    before = api(stack, "GET", "/api/cloud/jobs", params={"limit": "500"}).json()["jobs"]
    # The other tests' jobs arrive by webhook, their models named e2e/...; any other job came from a sync.
    synced_before = [job for job in before if not job["model"].startswith("e2e/")]
    answers = [sync(stack)]
    pause = 0.5
    while not answers[-1]["history_complete"] and len(answers) < 240:
        time.sleep(pause)
        pause = min(2.0, pause * 1.5)  # each sync reads the simulator's newest pages: ask less often
        answers.append(sync(stack))
    assert answers[-1]["history_complete"], answers
    if not synced_before:  # the stack's first sync
        assert answers[0]["synced"] > 0, answers
    for answer in answers:
        assert answer["message"].startswith(f"Discovered {answer['synced']} new jobs from Replicate")
    assert answers[-1]["message"] == f"Discovered {answers[-1]['synced']} new jobs from Replicate"
    metrics = api(stack, "GET", "/api/cloud/metrics").json()
    assert metrics["job_count"] > 200 and metrics["total_cost_usd"] > 0
    listed = api(stack, "GET", "/api/cloud/jobs", params={"limit": "500"}).json()["jobs"]
    assert len(listed) == metrics["job_count"] == len({job["job_id"] for job in listed})
    # The counts add up: each job an answer counted is one the stack did not have (the background import
    # stores the rest of the history on top), and no job was lost.
    assert {job["job_id"] for job in before} <= {job["job_id"] for job in listed}
    assert len(before) + sum(answer["synced"] for answer in answers) <= len(listed), answers
    stamps = [job["created_at"] for job in listed]
    assert None not in stamps and stamps == sorted(stamps, reverse=True)  # newest first, all of them
    running = api(stack, "GET", "/api/cloud/jobs", params={"status": "running", "sync_active": "true"}).json()["jobs"]
    assert running, "the simulator always has a job training"
    progress = api(stack, "GET", f"/api/cloud/jobs/{running[0]['job_id']}/inline-progress").json()
    assert progress["job_id"] == running[0]["job_id"]
    assert progress["stage"] in {"Preprocessing", "Warmup", "Training", "Validation", "Saving checkpoint"}
    assert progress["last_log"] and len(progress["last_log"]) <= 80


async def _receive_change(stack, job_id: str, action) -> list[dict]:
    async with connect(stack, fresh_source_ip()) as socket:
        await asyncio.to_thread(action)
        messages: list[dict] = []
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=deadline - time.monotonic()))
            if message.get("job_id") == job_id:
                messages.append(message)
                if message["status"] in ("completed", "failed", "cancelled"):
                    return messages
        return messages


def test_a_signed_webhook_moves_a_job_and_every_socket_hears_it(stack):
    # This job exists only in its webhooks: with polling on, the poller would rightly find
    # that Replicate (the simulator) does not know it and end it. Webhooks replace polling.
    found = api(stack, "GET", "/api/cloud/polling/status").json()["preference"]
    api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": False})
    try:

        def send_webhooks() -> None:
            assert signed_webhook(stack, prediction("e2e-hook", "processing"), "msg_e2e_1").status_code == 200
            assert signed_webhook(stack, prediction("e2e-hook", "succeeded"), "msg_e2e_2").status_code == 200

        messages = asyncio.run(_receive_change(stack, "e2e-hook", send_webhooks))

        assert [(m["type"], m["status"], m["previous_status"]) for m in messages] == [
            ("job_status_changed", "running", None),
            ("job_status_changed", "completed", "running"),
        ]
        job = api(stack, "GET", "/api/cloud/jobs/e2e-hook").json()["job"]
        assert job["status"] == "completed" and job["cost_usd"] == pytest.approx(600 * 0.001525)
        replay = signed_webhook(stack, prediction("e2e-hook", "processing"), "msg_e2e_1")
        assert replay.status_code == 200 and replay.json()["duplicate"] is True
    finally:
        api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": found})  # back to what it was


def test_a_forged_webhook_is_refused(stack):
    body = json.dumps(prediction("forged", "succeeded"))
    headers = {"webhook-id": "msg_x", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,Zm9yZ2Vk"}
    assert request("POST", f"{stack.url}/api/webhooks/replicate", content=body, headers=headers).status_code == 401
    assert api(stack, "GET", "/api/cloud/jobs/forged").status_code == 404


def test_management_api_answers_410_for_a_gone_connection(stack):
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=f"{stack.url}/live",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, read_timeout=REQUEST_SECONDS),
    )
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="no-such-connection", Data=b"{}")


def test_sixth_socket_from_one_ip_is_refused_at_the_handshake(stack):
    ip = fresh_source_ip()

    async def scenario() -> list[dict]:
        sockets = [await connect(stack, ip) for _ in range(5)]
        try:
            with pytest.raises(websockets.InvalidStatus):
                await connect(stack, ip)
            async with connect(stack, fresh_source_ip()) as elsewhere:  # the cap is per source IP
                answers = [await _pong(elsewhere)]
            answers += [await _pong(socket) for socket in sockets]  # the five kept working
        finally:
            for socket in sockets:
                await socket.close()
        # A closed socket gives its slot back (once its $disconnect has run).
        async with await connect_once_a_slot_is_free(stack, ip) as again:
            answers.append(await _pong(again))
        return answers

    assert asyncio.run(scenario()) == [{"type": "pong"}] * 7


def test_a_socket_without_a_token_is_refused(stack):
    async def attempt() -> None:
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(stack.ws_url, open_timeout=PATIENCE_SECONDS)

    asyncio.run(attempt())


def test_jobs_and_settings_survive_a_restart(own_stack):
    stack = own_stack
    api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": False})
    try:
        assert signed_webhook(stack, prediction("kept", "succeeded"), "msg_kept").status_code == 200
        before = api(stack, "GET", "/api/cloud/metrics").json()["job_count"]

        assert stack.stop() == 0
        stack.start()

        assert api(stack, "GET", "/api/cloud/metrics").json()["job_count"] >= before
        assert api(stack, "GET", "/api/cloud/jobs/kept").json()["job"]["status"] == "completed"
        status = api(stack, "GET", "/api/cloud/polling/status").json()
        assert (status["is_active"], status["preference"]) == (False, False)
    finally:
        if stack.process is not None and stack.process.poll() is None:
            api(stack, "PUT", "/api/cloud/polling/setting", json={"enabled": None})  # back to automatic


def test_unknown_routes_answer_404_and_wrong_methods_405_in_the_contracts_shape(stack):
    # Answered by the template's catch-all route (ANY /{proxy+}) when it has one, else by the gateway itself.
    unknown = (("GET", "/api/no/such/route"), ("GET", "/no-such-file.js"), ("POST", "/app.js"))
    wrong_method = (
        ("DELETE", "/api/health", "GET"),
        ("POST", "/api/cloud/metrics", "GET"),
        ("PUT", "/api/cloud/jobs/sync", "POST"),
        ("TRACE", "/api/cloud/jobs", "GET"),
    )
    cases = [(method, path, 404, "not_found", None) for method, path in unknown]
    cases += [(method, path, 405, "method_not_allowed", allow) for method, path, allow in wrong_method]
    for method, path, status, error, allow in cases:
        for headers in (stack.headers(), {}):
            answer = request(method, f"{stack.url}{path}", headers=headers)
            body = answer.json()
            assert answer.status_code == status, (method, path, body)
            assert set(body) == {"error", "message"} and body["error"] == error, (method, path, body)
            assert isinstance(body["message"], str) and body["message"], (method, path, body)
            assert answer.headers["content-type"].startswith("application/json")
            if allow is not None:
                assert answer.headers["allow"] == allow, (method, path, answer.headers)
    assert request("GET", f"{stack.url}/styles.css").status_code == 200  # the dashboard's files come first


async def _pong(socket) -> dict:
    """The answer to a ping, past any broadcast that comes first."""
    await socket.send(json.dumps({"action": "ping"}))
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout=PATIENCE_SECONDS))
        if message.get("type") == "pong":
            return message


def test_a_binary_frame_closes_that_socket_with_1003_as_api_gateway_does(stack):
    ip = fresh_source_ip()

    async def scenario() -> int:
        async with connect(stack, ip) as socket:
            await socket.send(b"\x00\xffnot text")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:  # broadcasts may come before the close
                    await asyncio.wait_for(socket.recv(), timeout=PATIENCE_SECONDS)
        async with connect(stack, ip) as socket:
            assert await _pong(socket) == {"type": "pong"}
        return closed.value.rcvd.code

    assert asyncio.run(scenario()) == 1003


def test_sockets_open_when_the_stack_is_killed_hold_no_place_after_it(own_stack):
    stack = own_stack
    ip = fresh_source_ip()

    async def scenario() -> None:
        sockets = [await connect(stack, ip) for _ in range(5)]
        await asyncio.sleep(2.5)  # a snapshot (every second here) is taken with all five open
        await asyncio.to_thread(stack.process.kill)
        await asyncio.to_thread(stack.process.wait)
        for socket in sockets:
            await socket.close()
        await asyncio.to_thread(stack.start)
        # The same IP may open its five again at once: no slot came back for the dead sockets.
        again = [await connect(stack, ip) for _ in range(5)]
        try:
            assert await _pong(again[0]) == {"type": "pong"}
        finally:
            for socket in again:
                await socket.close()

    asyncio.run(scenario())


def test_the_stack_logs_its_own_lines_and_each_function_line_once(own_stack):
    stack = own_stack
    started = stack.log()  # this start's lines (and those of the module's earlier starts and stops)
    refused = '"message":"webhook refused"'
    headers = {"webhook-id": "msg_log", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,Zm9yZ2Vk"}
    assert request("POST", f"{stack.url}/api/webhooks/replicate", content="{}", headers=headers).status_code == 401

    assert stack.stop() == 0
    log = stack.log()[len(started) :]  # what this test's request and Ctrl-C wrote

    assert log.count(refused) == 1
    assert "local.stack INFO DynamoDB (moto) on http://127.0.0.1:" in started.split("jobsync is up")[-2]
    assert "local.stack INFO stopping" in log
    assert re.search(r"local\.stack INFO saved \d+ items? to ", log)
