"""A websocket client that stops reading, over the real gateway, RabbitMQ and MongoDB.

The stalled client is an owner's console (it sees every conversation of the tenant) whose
TCP receive window is tiny and which never reads: its kernel buffer, the gateway's
socket buffer and its bounded send queue fill while a customer and an agent chat. The
gateway must close it with 4409 (resumable) without slowing the others, and its resume
with ``resume_from`` must deliver every event it missed exactly once.
"""

import asyncio
import base64
import os
import socket
import struct
import urllib.parse
from collections import Counter
from typing import Any

import orjson
import pytest

from gateway.sessions import CLOSE_SLOW_CONSUMER
from relaydesk.settings import Settings
from tests.fault.conversation import engaged, gateway_client
from tests.fault.driver import tally
from tests.system import running_system

pytestmark = pytest.mark.fault

QUEUE_LIMIT = 16  # frames the gateway queues for one socket (production: 1000)
BODY = "x" * 7000  # big frames fill the socket buffers in a few hundred messages
MAX_MESSAGES = 1500  # the stalled socket must be closed long before this
# "Unaffected" is lockstep, not a latency bound a busy machine would break: each message
# reaches the agent before the next is sent, while the stalled socket's buffers fill. A
# gateway whose fan-out waited on the stalled socket would never deliver the next one (this
# is only the guard against waiting forever).
DELIVERY_GUARD_S = 20.0


class StalledReader:
    """A websocket client that reads only when told to, over a socket with a few KiB of window.

    Written on a bare stream: the ``websockets`` client keeps reading into its own memory
    even when its application does not, so it never stalls a server the way a frozen
    phone does. Here nothing is read from the kernel until ``read_*`` is called.
    """

    def __init__(self, url: str, origin: str) -> None:
        self.url, self.origin = url, origin
        self.frames: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, token: str, resume_from: int | None = None) -> dict[str, Any]:
        parsed = urllib.parse.urlsplit(self.url)
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
        )  # before connect: the window stays small
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, (parsed.hostname, parsed.port))
        self._reader, self._writer = await asyncio.open_connection(
            sock=raw, limit=4096
        )  # pauses the transport past 8 KiB
        query = f"token={token}" + (
            f"&resume_from={resume_from}" if resume_from is not None else ""
        )
        key = base64.b64encode(os.urandom(16)).decode()
        self._writer.write(
            (
                f"GET {parsed.path}?{query} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {self.origin}\r\n\r\n"
            ).encode()
        )
        await self._writer.drain()
        status = await self._reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101"), status
        hello = await self._frame()
        assert hello is not None and hello["t"] == "hello", hello
        return hello

    async def _frame(self) -> dict[str, Any] | None:
        """One server frame (unmasked, unfragmented: what the gateway sends); None on a close."""
        assert self._reader is not None
        head = await self._reader.readexactly(2)
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self._reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self._reader.readexactly(8))[0]
        payload = await self._reader.readexactly(length)
        if opcode == 0x8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            return None
        return orjson.loads(payload) if opcode == 0x1 else {"t": "control"}

    async def read_until_closed(self) -> int | None:
        """Read what was buffered, then the close: the close code the gateway sent (1006: none)."""
        try:
            while (frame := await self._frame()) is not None:
                self.frames.append(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close_code = 1006  # the connection dropped without a close frame
        return self.close_code

    async def read_until(self, done: Any, timeout: float = 30) -> bool:
        """Read until ``done()``; False when the gateway closed the socket first."""
        async with asyncio.timeout(timeout):
            while not done():
                frame = await self._frame()
                if frame is None:
                    return False
                self.frames.append(frame)
        return True

    def bodies_seen(self) -> Counter[str]:
        return Counter(
            f["event"]["data"]["body"]
            for f in self.frames
            if f.get("t") == "event" and f["event"]["type"] == "message.sent"
        )

    @property
    def last_position(self) -> int:
        return max(f["position"] for f in self.frames if f.get("t") == "event")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def test_a_stalled_socket_is_closed_4409_resumes_exactly_once_and_others_keep_their_latency(
    settings: Settings,
) -> None:
    # The customer sends as fast as acks come back: no per-socket rate limit in the way.
    slow_gateway = settings.model_copy(
        update={"ws_queue_limit": QUEUE_LIMIT, "ws_rate_per_s": 10_000.0, "ws_rate_burst": 10_000}
    )
    async with (
        running_system(slow_gateway) as system,
        gateway_client(system.gateway.base_url, timeout=20) as http,
    ):
        customer, agent, conversation_id, owner = await engaged(
            system, http, [system.gateway.ws_url]
        )
        owner_token = owner["Authorization"].split()[1]
        stalled = StalledReader(system.gateway.ws_url, system.gateway.base_url)
        await stalled.open(owner_token)
        close_codes = system.gateway.server.config.app.state.deps.sessions.close_codes

        sent: list[str] = []
        received: set[str] = set()
        arrived = asyncio.Event()

        def note_arrival(frame: dict[str, Any]) -> None:
            event = frame["event"]
            if event["type"] == "message.sent" and event["data"]["author_kind"] == "customer":
                received.add(event["data"]["body"])
                arrived.set()

        async def delivered_to_agent(body: str) -> None:
            async with asyncio.timeout(DELIVERY_GUARD_S):
                while body not in received:
                    arrived.clear()
                    await arrived.wait()

        agent.on_event = note_arrival
        # Chat until the gateway gives up on the stalled socket, then a little more (missed by it).
        while close_codes[CLOSE_SLOW_CONSUMER] == 0:
            assert len(sent) < MAX_MESSAGES, (
                "the stalled socket was never closed as a slow consumer"
            )
            body = f"m-{len(sent)}-{BODY}"
            assert (
                await customer.op(
                    "send", key=f"send-{len(sent)}", conversation_id=conversation_id, body=body
                )
            )["t"] == "ack"
            sent.append(body)
            await delivered_to_agent(body)  # while the stalled socket is open and unread
        for _ in range(5):
            body = f"m-{len(sent)}-after"
            assert (
                await customer.op(
                    "send", key=f"send-{len(sent)}", conversation_id=conversation_id, body=body
                )
            )["t"] == "ack"
            sent.append(body)
            await delivered_to_agent(body)

        # The others: everything, once, while the socket was stuck.
        others = tally(
            "slow consumer (the agent, meanwhile)",
            sent,
            agent.bodies("customer"),
            agent.recovered + customer.recovered,
        )
        assert others.lost == 0 and others.duplicated == 0, others
        echo = tally(
            "slow consumer (the customer's own copy)",
            sent,
            customer.bodies("customer"),
            customer.recovered,
        )
        assert echo.lost == 0 and echo.duplicated == 0, echo

        # The stalled client reads again: what was buffered, then the close (4409, resumable).
        close_code = await asyncio.wait_for(stalled.read_until_closed(), 30)
        assert (
            close_codes[CLOSE_SLOW_CONSUMER] == 1
        )  # the gateway classified it as a slow consumer, and only it
        # Resume like the widget: reconnect from the last position until caught up. The missed
        # events are replayed whatever their number (the backlog does not count against the live
        # queue's bound), so one resume is enough; across all rounds every event comes once.
        readers, position = [stalled], stalled.last_position

        def caught_up() -> bool:
            seen_so_far = sum((r.bodies_seen() for r in readers), Counter())
            return all(seen_so_far[b] for b in sent)

        while not caught_up():
            assert len(readers) < 100, "resuming never caught up"
            resumed = StalledReader(system.gateway.ws_url, system.gateway.base_url)
            readers.append(resumed)
            await resumed.open(owner_token, resume_from=position)
            if not await resumed.read_until(caught_up):
                assert resumed.close_code == CLOSE_SLOW_CONSUMER, resumed.close_code
            position = max(
                [position] + [f["position"] for f in resumed.frames if f.get("t") == "event"]
            )
            await resumed.close()
        assert len(readers) == 2, f"catching up took {len(readers) - 1} resumes, not one"
        seen = sum((r.bodies_seen() for r in readers), Counter())
        report = tally("slow consumer closed and resumed", sent, seen, len(readers) - 1)
        assert report.lost == 0 and report.duplicated == 0, report
        all_events = Counter(
            f["event"]["id"] for r in readers for f in r.frames if f.get("t") == "event"
        )
        assert max(all_events.values()) == 1, "an event was delivered twice across the resumes"
        await customer.stop()
        await agent.stop()
        # A peer whose TCP window stays closed cannot be sent a close frame at all: the send
        # that would carry it waits behind the data it is not reading. The gateway then drops
        # the connection (1006) instead of waiting on it; a peer that reads again in time gets
        # 4409. Either way the gateway counted it a slow consumer and resuming works (above).
        assert close_code in (CLOSE_SLOW_CONSUMER, 1006), close_code
