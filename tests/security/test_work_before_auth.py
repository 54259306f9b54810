"""Issue 14, item 5: nobody makes the gateway work (read, spool, hold) before it knows them.

Real sockets against a real gateway: a request is sent in part and the answer (or the
close) is watched for while the rest is still unsent — so an answer that comes proves
the server did not wait for, nor read, what was never sent.
"""

from collections.abc import AsyncIterator

import pytest
import websockets

from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.gateway.wsclient import Client
from tests.security.rawhttp import RawConnection, request_head
from tests.system import RunningGateway, RunningSystem, running_system, start_gateway

MB = 1024 * 1024


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings, with_history=False) as running:
        yield running


async def test_oversized_bodies_are_refused_413_before_they_are_read(
    system: RunningSystem,
) -> None:
    port = system.gateway.settings.gateway_port
    # A declared 32 MB login: answered from the header, with 1 KiB of it sent.
    login = await RawConnection.open(port)
    await login.send(
        request_head(
            "POST",
            "/api/auth/login",
            {"Content-Type": "application/json", "Content-Length": str(32 * MB)},
        )
        + b'{"tenant": "acme", "email": "'
        + b"a" * 1024
    )
    answer = await login.answer()
    assert answer.status == 413 and answer.json() == {
        "error": {"code": "too_large", "message": "request bodies here are limited to 16384 bytes"}
    }
    assert answer.headers["connection"] == "close"
    assert await login.closed_by_server()

    # No length declared (chunked): counted as it arrives, refused once past 16 KiB.
    chunked = await RawConnection.open(port)
    await chunked.send(
        request_head(
            "POST",
            "/api/auth/login",
            {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        )
    )
    # One byte over the limit, in a body that never ends (nothing is sent after the byte
    # that crosses it: closing on unread bytes would reset the connection, answer and all).
    await chunked.send(b"4001\r\n" + b" " * 0x4001)
    answer = await chunked.answer()
    assert answer.status == 413 and answer.json()["error"]["code"] == "too_large"
    assert await chunked.closed_by_server()

    # Other JSON routes: 1 MiB, also from the declared length.
    admin = await RawConnection.open(port)
    await admin.send(
        request_head(
            "PATCH",
            "/api/admin/settings",
            {"Content-Type": "application/json", "Content-Length": str(2 * MB)},
        )
    )
    assert (await admin.answer()).status == 413


async def test_uploads_are_checked_before_their_body_is_read(system: RunningSystem) -> None:
    agent = await Client.connect(system.gateway.ws_url, system.agent_token("acme", "ann"))
    assert (await agent.op("status", status="online"))["t"] == "ack"
    customer = await Client.connect(system.gateway.ws_url, system.visitor_token("acme", "v1"))
    conversation_id = (await customer.op("start"))["conversation_id"]
    path = f"/api/conversations/{conversation_id}/attachments"
    boundary = "relaydeskboundary"
    prefix = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG\r\n\x1a\n"
        + b"\0" * 8192
    )

    async def refused_before_body(headers: dict[str, str]) -> tuple[int, str]:
        upload = await RawConnection.open(system.gateway.settings.gateway_port)
        await upload.send(
            request_head(
                "POST",
                path,
                {
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(64 * MB),
                    "Idempotency-Key": "k1",
                    **headers,
                },
            )
            + prefix
        )
        answer = await upload.answer()  # 64 MB declared, 8 KiB sent
        assert answer.headers["connection"] == "close"
        assert await upload.closed_by_server()
        return answer.status, answer.json()["error"]["code"]  # type: ignore[index]

    assert await refused_before_body({}) == (401, "unauthorized")
    stranger = system.visitor_token("acme", "v-stranger")
    assert await refused_before_body({"Authorization": f"Bearer {stranger}"}) == (
        403,
        "forbidden",
    )
    owner = system.visitor_token("acme", "v1")  # may write, but 64 MB > the tenant's 10 MiB
    assert await refused_before_body({"Authorization": f"Bearer {owner}"}) == (413, "too_large")
    await agent.close()
    await customer.close()


@pytest.fixture
async def strict_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    """A gateway alone (no other service is needed to open connections to it)."""
    gateway = await start_gateway(
        settings.model_copy(
            update={
                "http_header_timeout_s": 8.0,  # long enough for the steps below, busy or not
                "http_pending_per_address": 5,
                "ws_max_per_address": 3,
                "ws_connect_burst": 5,
                "ws_connect_rate_per_min": 0.5,
            }
        )
    )
    try:
        yield gateway
    finally:
        await gateway.stop()


async def test_slow_or_endless_headers_and_idle_connections_are_cut_off(
    strict_gateway: RunningGateway,
) -> None:
    port = strict_gateway.settings.gateway_port
    # Five connections of one address may wait for their request; the sixth is closed at once.
    idle = [await RawConnection.open(port) for _ in range(4)]
    slow = await RawConnection.open(port)
    await slow.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")  # never ends
    sixth = await RawConnection.open(port)
    assert await sixth.closed_by_server(timeout=3.0)
    # ...while the five are still open: the first one still gets an answer.
    await idle[0].send(request_head("GET", "/healthz"))
    assert (await idle[0].answer()).status == 200

    # Headers that never end are answered 408 after the header timeout (8 s), idle
    # connections closed; nothing is held open the way 300 slowloris sockets were for 70 s.
    answer = await slow.answer(timeout=20.0)
    assert answer.status == 408
    for connection in idle[1:]:
        assert await connection.closed_by_server(timeout=20.0)

    # Headers that keep coming past 64 KiB: 431 without waiting for their end (as above,
    # nothing is sent after the byte that crosses the limit).
    endless = await RawConnection.open(port)
    start = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: "
    await endless.send(start + b"x" * (64 * 1024 + 1 - len(start)))
    assert (await endless.answer()).status == 431
    assert strict_gateway.server.config.http_protocol_class  # the guarded protocol served


async def test_websockets_per_address_are_capped_and_rate_limited(
    strict_gateway: RunningGateway,
) -> None:
    token = RunningSystem(strict_gateway.settings, strict_gateway).agent_token("acme", "ann")
    url = strict_gateway.ws_url
    opened = [await Client.connect(url, token) for _ in range(3)]

    async def refused() -> websockets.InvalidStatus:
        with pytest.raises(websockets.InvalidStatus) as answer:
            await websockets.connect(f"{url}?token={token}")
        return answer.value

    over_cap = await refused()
    assert over_cap.response.status_code == 429
    assert int(over_cap.response.headers["Retry-After"]) >= 1
    assert b"open websockets per client address" in over_cap.response.body

    # A closed socket frees its place (once the server has seen the close).
    await opened.pop().close()
    opened.append(await _connect_when_free(url, token))
    # Five handshakes spent the burst (refill: one every two minutes): the sixth waits.
    await opened.pop().close()
    opened.append(await _connect_when_free(url, token))  # the fifth
    await opened.pop().close()
    too_fast = await refused()
    assert too_fast.response.status_code == 429
    assert b"too many new websockets" in too_fast.response.body
    assert int(too_fast.response.headers["Retry-After"]) > 60
    for client in opened:
        await client.close()


async def _connect_when_free(url: str, token: str) -> Client:
    """Connect as soon as the server has counted a just-closed socket as gone."""

    async def attempt() -> Client | None:
        try:
            return await Client.connect(url, token)
        except websockets.InvalidStatus as refused:
            assert b"open websockets" in refused.response.body  # the cap, not the rate
            return None

    client: Client = await eventually(attempt, what="the closed socket's place to be free")
    return client
