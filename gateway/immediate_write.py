"""A frame written to its socket at once, when nothing would make the write wait.

A session's frames went through a writer task: the first frame queued for an idle socket
started one, and it ran an event-loop iteration later, through Starlette's and uvicorn's
ASGI ``send`` (a str decoded from our bytes, then encoded again). Under load an iteration
of the gateway's loop takes milliseconds (every ready callback runs first), and a chat
message passed several such hand-offs between the customer's frame and the agent's
socket (docs/performance.md, "Hand-offs in the gateway"). A write that cannot wait needs
none of that: when uvicorn's websocket protocol is open, handshaken and not paused by
flow control, what its ``send`` does for a text frame is two calls, made here directly.

Anything else (no such protocol, paused writing, a close under way) answers False and the
frame takes the writer task's way, which waits and fails as before; a session uses this
only while nothing of it is queued, so frames stay in order.
"""

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState


def protocol_of(send: Any) -> WebSocketsSansIOProtocol | None:
    """The uvicorn protocol behind an ASGI ``send`` callable, if it is the sansio one."""
    protocol = getattr(send, "__self__", None)
    return protocol if isinstance(protocol, WebSocketsSansIOProtocol) else None


def write_now(protocol: WebSocketsSansIOProtocol, frame: bytes) -> bool:
    """Write ``frame`` (UTF-8 JSON) as one text frame now; False when that would wait or
    the socket is past sending (the caller queues it instead)."""
    if not _framed(protocol, frame):
        return False
    _write_framed(protocol)
    return True


class WriteBatch:
    """Frames for several sockets gathered while one chunk of the log is fanned out, each
    socket's written with one ``transport.write`` when the chunk is done (``flush``).

    An agent's console gets the frames of all its conversations: at 1,500 chat messages a
    second a chunk of the log (10 ms of it) held ~1.5 frames per agent socket, each its own
    write syscall (the gateway's largest single cost under load, docs/performance.md,
    "What was taken out per message"). A frame is framed at once into the connection's
    outgoing buffer, in order; whatever writes to the same socket before the flush (an ack)
    sends it along, in the same order, and the flush then has nothing left for it.
    """

    def __init__(self) -> None:
        self._pending: dict[int, WebSocketsSansIOProtocol] = {}

    def add(self, protocol: WebSocketsSansIOProtocol, frame: bytes) -> bool:
        """As ``write_now``, but written at the next ``flush``."""
        if not _framed(protocol, frame):
            return False
        self._pending[id(protocol)] = protocol
        return True

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for protocol in pending.values():
            if not protocol.transport.is_closing():
                _write_framed(protocol)


def _framed(protocol: WebSocketsSansIOProtocol, frame: bytes) -> bool:
    """Put ``frame`` into the connection's outgoing buffer, when it can be written without
    waiting."""
    if (
        not protocol.writable.is_set()  # flow control: the peer is not reading
        or protocol.disconnected
        or protocol.close_sent
        or not protocol.handshake_complete
        or protocol.initial_response is not None
        or protocol.transport.is_closing()
    ):
        return False
    try:
        protocol.conn.send_text(frame)
    except InvalidState:  # closing: the writer task's send raises, and ends the session
        return False
    return True


def _write_framed(protocol: WebSocketsSansIOProtocol) -> None:
    data = protocol.conn.data_to_send()
    if data:
        protocol.transport.write(b"".join(data))
