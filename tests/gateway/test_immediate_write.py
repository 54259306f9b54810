"""Frames written at once on a real uvicorn websocket, and queued in order when they cannot be.

gateway/immediate_write.py writes a frame through uvicorn's protocol when the socket has
nothing queued and is not paused by flow control; otherwise the session's writer task
sends it as before. A real server and client: what the client receives, in which order.
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect

from gateway.auth.tokens import VisitorPrincipal
from gateway.immediate_write import WriteBatch, protocol_of
from gateway.server import WS_BACKEND
from gateway.sessions import Session
from tests.admin.helpers import eventually

PRINCIPAL = VisitorPrincipal(tenant="acme", visitor_id="v1")


class OneSocketServer:
    """uvicorn (the gateway's websocket backend) serving one ``Session`` per socket."""

    def __init__(self) -> None:
        self.sessions: asyncio.Queue[tuple[Session, Any]] = asyncio.Queue()
        self._done = asyncio.Event()

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        protocol = protocol_of(send)
        assert protocol is not None, "the gateway's backend is uvicorn's sansio protocol"
        await self.sessions.put((Session(websocket, PRINCIPAL, 100, protocol), protocol))
        await self._done.wait()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ClientConnection]:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self.app, ws=WS_BACKEND, interface="asgi3", lifespan="off", log_config=None
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        try:
            await eventually(lambda: server.started, timeout=10, what="uvicorn to listen")
            port = listener.getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/ws") as client:
                yield client
                self._done.set()
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 10)


async def received(client: ClientConnection, n: int) -> list[str]:
    return [str(await asyncio.wait_for(client.recv(), 5)) for _ in range(n)]


async def test_a_frame_for_a_socket_with_nothing_queued_is_written_without_a_writer_task() -> None:
    server = OneSocketServer()
    async with server.running() as client:
        session, _ = await server.sessions.get()
        for n in range(3):
            session.send_bytes(b'{"n":%d}' % n)
            assert session.writer is None  # written in the call: no task, no loop turn
        assert await received(client, 3) == ['{"n":0}', '{"n":1}', '{"n":2}']


async def test_frames_wait_in_order_while_the_peer_is_not_read_and_go_direct_after() -> None:
    server = OneSocketServer()
    async with server.running() as client:
        session, protocol = await server.sessions.get()
        protocol.pause_writing()  # what the transport calls when the peer stops reading
        for n in range(3):
            session.send_bytes(b'{"n":%d}' % n)
        writer = session.writer
        assert writer is not None  # queued: the writer task waits for the socket
        protocol.resume_writing()
        await asyncio.wait_for(writer, 5)
        session.send_bytes(b'{"n":3}')
        assert session.writer is None
        assert await received(client, 4) == [f'{{"n":{n}}}' for n in range(4)]


async def test_a_batch_writes_a_sockets_frames_in_one_write_at_its_flush_in_order() -> None:
    server = OneSocketServer()
    async with server.running() as client:
        session, protocol = await server.sessions.get()
        writes: list[bytes] = []
        transport_write = protocol.transport.write

        def counted(data: bytes) -> None:
            writes.append(data)
            transport_write(data)

        protocol.transport.write = counted  # type: ignore[method-assign]
        batch = WriteBatch()
        for n in range(3):
            session.send_event(n, b'{"n":%d}' % n, batch)
        assert session.writer is None and writes == []  # framed, not written yet
        batch.flush()
        assert len(writes) == 1  # the three frames, one write
        batch.flush()
        assert len(writes) == 1  # nothing left for a second one
        assert await received(client, 3) == ['{"n":0}', '{"n":1}', '{"n":2}']


async def test_a_frame_written_before_the_flush_takes_the_batched_ones_first() -> None:
    """An ack sent while the chunk's frames wait keeps its place after them."""
    server = OneSocketServer()
    async with server.running() as client:
        session, _ = await server.sessions.get()
        batch = WriteBatch()
        session.send_event(0, b'{"n":0}', batch)
        session.send_bytes(b'{"ack":1}')
        session.send_event(1, b'{"n":1}', batch)
        batch.flush()
        assert await received(client, 3) == ['{"n":0}', '{"ack":1}', '{"n":1}']


async def test_a_batched_frame_for_a_paused_socket_waits_for_the_writer_in_order() -> None:
    server = OneSocketServer()
    async with server.running() as client:
        session, protocol = await server.sessions.get()
        batch = WriteBatch()
        session.send_event(0, b'{"n":0}', batch)
        protocol.pause_writing()
        session.send_event(1, b'{"n":1}', batch)  # cannot go now: the writer task takes it
        writer = session.writer
        assert writer is not None
        batch.flush()
        protocol.resume_writing()
        await asyncio.wait_for(writer, 5)
        assert await received(client, 2) == ['{"n":0}', '{"n":1}']
