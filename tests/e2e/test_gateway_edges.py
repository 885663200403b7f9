"""The local API Gateway's edges, on `make run`'s stack: forwarding headers and oversized WebSocket handshakes."""

from __future__ import annotations

import asyncio
import socket

import pytest
import websockets

from tests.stack_process import PATIENCE_SECONDS, LocalStack, fresh_source_ip

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(shared_stack) -> LocalStack:
    return shared_stack


def test_forwarding_headers_do_not_lift_the_cap_per_source_ip(stack):
    ip, pretended = fresh_source_ip(), fresh_source_ip()

    def connect(**headers: str):
        return websockets.connect(
            f"{stack.ws_url}?token={stack.token}",
            local_addr=(ip, 0),
            additional_headers=headers,
            open_timeout=PATIENCE_SECONDS,
        )

    async def scenario() -> None:
        sockets = [await connect() for _ in range(5)]
        try:
            for headers in ({"X-Forwarded-For": pretended}, {"Forwarded": f"for={pretended}"}):
                with pytest.raises(websockets.InvalidStatus) as refused:
                    await connect(**headers)
                assert refused.value.response.status_code == 403
        finally:
            for open_socket in sockets:
                await open_socket.close()

    asyncio.run(scenario())


def test_an_oversized_websocket_handshake_is_answered_not_left_hanging(stack):
    port = int(stack.url.rsplit(":", 1)[1])
    request = (
        f"GET /live?token={stack.token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Cookie: {'a' * 9000}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE_SECONDS) as client:
        client.sendall(request.encode())
        answer = b""
        while chunk := client.recv(65536):  # closed after the answer; a hang fails with socket.timeout
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 ")
