"""The load generator's picows socket against a real websocket server (websockets'): frames
awaited one by one during the handshake phase, then handed to a function in arrival order,
buffered ones first; the server's close is seen either way."""

import asyncio

import pytest
import websockets

from tools.bench.ws_client import SocketClosed, connect

pytestmark = pytest.mark.asyncio


async def test_frames_are_awaited_then_handed_over_in_order_and_the_close_is_seen() -> None:
    origins: list[str | None] = []

    async def server(ws: websockets.ServerConnection) -> None:
        origins.append(ws.request.headers.get("Origin") if ws.request else None)
        for text in ("a", "b", "c"):
            await ws.send(text)
        incoming = await ws.recv()
        await ws.send(f"d after {incoming}")
        await ws.close(4001, "done")

    async with websockets.serve(server, "127.0.0.1", 0) as running:
        port = running.sockets[0].getsockname()[1]
        socket = await connect(f"ws://127.0.0.1:{port}/ws", "https://shop.example")
        assert await socket.recv() == b"a"
        handed: list[bytes] = []
        last = asyncio.Event()

        def handler(_: object, raw: bytes) -> None:
            handed.append(raw)
            if raw.startswith(b"d"):
                last.set()

        socket.deliver_to(handler)  # "b" and "c" may be buffered already, or still coming
        socket.send(b"go")
        async with asyncio.timeout(10):
            await last.wait()
            await socket.transport.wait_disconnected()  # type: ignore[union-attr]
        assert handed == [b"b", b"c", b"d after go"]
        assert socket.closed
        socket.send(b"after the close")  # dropped, not an error
    assert origins == ["https://shop.example"]


async def test_recv_raises_once_the_server_closed() -> None:
    async def server(ws: websockets.ServerConnection) -> None:
        await ws.close(4001, "go away")

    async with websockets.serve(server, "127.0.0.1", 0) as running:
        port = running.sockets[0].getsockname()[1]
        socket = await connect(f"ws://127.0.0.1:{port}/ws", "https://shop.example")
        async with asyncio.timeout(10):
            with pytest.raises(SocketClosed):
                await socket.recv()
            with pytest.raises(SocketClosed):
                await socket.recv()  # and every later wait, not a hang
