"""The load generator's websocket client, on picows.

The generator shares the two cores with the system it measures, so every microsecond it
spends per frame is one the system does not get. picows parses and masks frames in Cython
and hands each frame to a callback: no reader task, no queue and no await per frame (the
benchmark protocol's pick for the generator, ``../shared/reference/performance-anchors.md``
§4.2; docs/performance.md measures it against the websockets client it replaced).

A :class:`BenchSocket` starts out buffering text frames for :meth:`BenchSocket.recv` (the
handshake phase: hello, the ``start`` ack); :meth:`BenchSocket.deliver_to` then hands every
later frame straight to a function, the run's hot path.
"""

import asyncio
from collections.abc import Callable

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

FrameHandler = Callable[["BenchSocket", bytes], None]


class SocketClosed(ConnectionError):
    """The server closed the socket (or the connection dropped) while a frame was awaited."""


class BenchSocket(WSListener):
    """One websocket of the generator: text frames in as bytes, out as bytes."""

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._handler: FrameHandler | None = None
        self.closed = False

    # --- picows callbacks -----------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return  # pings are answered by picows (auto pong); the gateway sends no binary
        if not frame.fin:
            # The gateway writes each frame whole; a fragmented one would be misread here.
            raise ValueError("fragmented websocket frame: not written by the gateway")
        payload = frame.get_payload_as_bytes()
        if self._handler is not None:
            self._handler(self, payload)
        else:
            self._inbox.put_nowait(payload)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        self._inbox.put_nowait(None)

    # --- the generator's side -------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send ``data`` (UTF-8 JSON) as one text frame; dropped once the socket closed."""
        if self.transport is not None and not self.closed:
            self.transport.send(WSMsgType.TEXT, data)

    async def recv(self) -> bytes:
        """The next text frame (only before :meth:`deliver_to`)."""
        payload = await self._inbox.get()
        if payload is None:
            self._inbox.put_nowait(None)  # every later recv sees the close too
            raise SocketClosed("websocket closed")
        return payload

    def deliver_to(self, handler: FrameHandler) -> None:
        """From now on, hand each text frame to ``handler`` as it arrives (buffered ones first)."""
        while not self._inbox.empty():
            payload = self._inbox.get_nowait()
            if payload is not None:
                handler(self, payload)
        self._handler = handler

    async def close(self) -> None:
        if self.transport is None or self.closed:
            return
        self.transport.send_close()
        self.transport.disconnect()
        await self.transport.wait_disconnected()


async def connect(url: str, origin: str) -> BenchSocket:
    """Open a socket to ``url`` with the given ``Origin`` (the gateway checks it)."""
    _, socket = await ws_connect(
        BenchSocket,
        url,
        extra_headers={"Origin": origin},
        websocket_handshake_timeout=30,
        enable_auto_pong=True,
    )
    assert isinstance(socket, BenchSocket)
    return socket
