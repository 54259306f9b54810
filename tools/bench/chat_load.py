"""Open-loop chat load over the real system: customers send, agents receive.

Each conversation is one customer websocket and an agent's websocket (an agent holds up
to ``chats_per_agent`` conversations, like a console). Messages are scheduled at a fixed
rate and the latency is measured from the *scheduled* send time, so a stalled generator
or server shows up as latency instead of hiding it (no coordinated omission). Every
message carries its sequence number; the agents' side counts lost and duplicated ones.

The generator shares the machine with the system it measures, so it is kept cheap:
frames go out as the UTF-8 bytes orjson writes (sent as text frames, not decoded to str and
encoded again), come in as bytes for orjson (``recv(decode=False)``), and the wait for a
round's last messages counts arrivals as they come instead of rescanning every sequence.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets
from websockets.typing import Origin

from contracts.events.conversation import ConversationAccepted, ConversationOffered
from contracts.events.message import MessageSent
from tools.bench.stats import Latencies

TENANT = "demo"
RESEND_CODES = frozenset({"unavailable", "rate_limited"})
RESEND_AFTER_S = 0.2


@dataclass
class Conversation:
    customer: Any
    conversation_id: str


@dataclass
class Tally:
    latencies: Latencies = field(default_factory=Latencies)
    echo: Latencies = field(default_factory=Latencies)
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    acks: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    resent: int = 0
    measuring: bool = False
    # The sequences of the round being sent and how many of them arrived so far.
    round: range = range(0)
    round_received: int = 0
    round_done: asyncio.Event = field(default_factory=asyncio.Event)


class ChatFleet:
    """Agents and customers connected to the gateways, with engaged conversations.

    With several gateways (``gateway_urls``), sockets are spread over them in turn, so a
    customer and her agent are mostly on different gateways and meet through the log.
    """

    def __init__(
        self,
        base_url: str,
        owner_password: str,
        *,
        conversations: int,
        chats_per_agent: int = 20,
        gateway_urls: list[str] | None = None,
        tenant: str = TENANT,
        owner_email: str = "owner@demo.local",
    ) -> None:
        self.base_url = base_url
        self.tenant = tenant
        self.owner_email = owner_email
        self._ws_urls = [
            url.replace("http", "ws", 1) + "/ws" for url in (gateway_urls or [base_url])
        ]
        self._next_gateway = 0
        self.owner_password = owner_password
        self.size = conversations
        self.chats_per_agent = chats_per_agent
        self.conversations: list[Conversation] = []
        self.sockets: list[Any] = []
        self.tally = Tally()
        self._readers: list[asyncio.Task] = []
        self._accepted: asyncio.Queue[str] = asyncio.Queue()
        self.owner_token = ""
        # Sends not acknowledged yet, by idempotency key: like the widget's outbox, a send
        # the gateway answers "unavailable" (or "rate_limited") is resent with the same
        # key, so the count of lost messages means "acknowledged and never delivered".
        self._unacked: dict[str, tuple[Any, bytes]] = {}
        self._resends: set[asyncio.Task[None]] = set()  # held: the loop keeps tasks weakly

    async def open(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            self.owner_token = await self._login(http, self.owner_email, self.owner_password)
            owner = {"Authorization": f"Bearer {self.owner_token}"}
            # One agent per offer, offers that never time out during the run.
            changed = await http.patch(
                "/api/admin/settings",
                headers=owner,
                json={
                    "routing_mode": "least_busy",
                    "offer_timeout_s": 3600,
                    "max_chats_default": self.chats_per_agent,
                },
            )
            changed.raise_for_status()
            agents = -(-self.size // self.chats_per_agent)
            tokens = []
            for index in range(agents):
                email = f"bench-agent-{index}@{self.tenant}.local"
                created = await http.post(
                    "/api/admin/agents",
                    headers=owner,
                    json={
                        "email": email,
                        "name": f"Bench {index}",
                        "password": "bench-password",
                        "max_chats": self.chats_per_agent,
                    },
                )
                created.raise_for_status()
                tokens.append(await self._login(http, email, "bench-password"))
            for token in tokens:
                agent = await websockets.connect(
                    f"{self._ws_url()}?token={token}",
                    origin=Origin(self.base_url),
                    max_queue=None,
                    compression=None,
                )
                hello = orjson.loads(await agent.recv())
                self.sockets.append(agent)
                self._readers.append(
                    asyncio.create_task(self._agent_reader(agent, hello["session"]["id"]))
                )
                await agent.send(
                    orjson.dumps(
                        {
                            "op": "status",
                            "id": f"status-{token[-12:]}",
                            "status": "online",
                            "max_chats": self.chats_per_agent,
                        }
                    ),
                    text=True,
                )
            customers = []
            for _ in range(self.size):
                session = (
                    await http.post("/api/visitor/session", json={"tenant": self.tenant})
                ).json()
                customer = await websockets.connect(
                    f"{self._ws_url()}?token={session['visitor_token']}",
                    origin=Origin("https://shop.example"),
                    max_queue=None,
                    compression=None,
                )
                await customer.recv()
                customers.append(customer)
        started = await asyncio.gather(
            *(self._start(customer, index) for index, customer in enumerate(customers))
        )
        self.conversations = [
            Conversation(customer, conversation_id)
            for customer, conversation_id in zip(customers, started, strict=True)
        ]
        self.sockets.extend(customers)
        async with asyncio.timeout(60):
            accepted: set[str] = set()
            while len(accepted) < self.size:
                accepted.add(await self._accepted.get())
        for conversation in self.conversations:
            self._readers.append(asyncio.create_task(self._customer_reader(conversation.customer)))

    def _ws_url(self) -> str:
        url = self._ws_urls[self._next_gateway % len(self._ws_urls)]
        self._next_gateway += 1
        return url

    async def _login(self, http: httpx.AsyncClient, email: str, password: str) -> str:
        response = await http.post(
            "/api/auth/login", json={"tenant": self.tenant, "email": email, "password": password}
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    async def _start(self, customer: Any, index: int) -> str:
        await customer.send(
            orjson.dumps(
                {"op": "start", "id": f"start-{index}", "visitor": {"name": f"Customer {index}"}}
            ),
            text=True,
        )
        while True:
            frame = orjson.loads(await customer.recv(decode=False))
            if frame.get("t") == "ack" and frame.get("id") == f"start-{index}":
                return str(frame["conversation_id"])
            if frame.get("t") == "error" and frame.get("id") == f"start-{index}":
                raise RuntimeError(f"start refused: {frame}")

    async def _agent_reader(self, agent: Any, agent_id: str) -> None:
        tally = self.tally
        async for raw in _frames(agent):
            received = time.perf_counter_ns()
            frame = orjson.loads(raw)
            if frame.get("t") != "event":
                continue
            event = frame["event"]
            kind, data = event["type"], event["data"]
            if kind == MessageSent.TYPE and data.get("author_kind") == "customer":
                sequence, scheduled = _parse(data["body"])
                if sequence is None:
                    continue
                if sequence in tally.seen:
                    tally.duplicates += 1
                    continue
                tally.seen.add(sequence)
                if sequence in tally.round:
                    tally.round_received += 1
                    if tally.round_received == len(tally.round):
                        tally.round_done.set()
                if tally.measuring and scheduled is not None:
                    tally.latencies.record_ns(received - scheduled)
            elif kind == ConversationOffered.TYPE:
                if agent_id in data["agent_ids"]:
                    await agent.send(
                        orjson.dumps(
                            {
                                "op": "accept",
                                "id": f"accept-{data['conversation_id']}",
                                "conversation_id": data["conversation_id"],
                            }
                        ),
                        text=True,
                    )
            elif kind == ConversationAccepted.TYPE:
                self._accepted.put_nowait(data["conversation_id"])

    def _resend(self, socket: Any, data: bytes) -> None:
        task = asyncio.create_task(socket.send(data, text=True))
        self._resends.add(task)
        task.add_done_callback(self._resends.discard)

    async def _customer_reader(self, customer: Any) -> None:
        tally = self.tally
        async for raw in _frames(customer):
            received = time.perf_counter_ns()
            frame = orjson.loads(raw)
            kind = frame.get("t")
            if kind == "ack":
                tally.acks += 1
                self._unacked.pop(frame.get("id"), None)
            elif kind == "error":
                code = frame.get("code", "?")
                tally.errors[code] = tally.errors.get(code, 0) + 1
                unacked = self._unacked.get(frame.get("id"))
                if unacked is not None and code in RESEND_CODES:
                    tally.resent += 1
                    asyncio.get_running_loop().call_later(RESEND_AFTER_S, self._resend, *unacked)
            elif kind == "event" and frame["event"]["type"] == MessageSent.TYPE and tally.measuring:
                _, scheduled = _parse(frame["event"]["data"]["body"])
                if scheduled is not None:
                    tally.echo.record_ns(received - scheduled)

    async def run(
        self,
        rate: float,
        seconds: float,
        first_sequence: int,
        *,
        measure: bool = True,
        drain_s: float = 15.0,
    ) -> dict[str, Any]:
        """Send ``rate`` msg/s for ``seconds``; wait for every message; summarize."""
        tally = self.tally
        tally.latencies.clear()
        tally.echo.clear()
        tally.errors.clear()
        tally.resent = 0
        tally.measuring = measure
        total = int(rate * seconds)
        interval = int(1e9 / rate)
        sequences = range(first_sequence, first_sequence + total)
        tally.round = sequences
        tally.round_received = sum(1 for s in sequences if s in tally.seen)  # none, normally
        tally.round_done = asyncio.Event()
        start = time.perf_counter_ns() + 50_000_000
        behind_max = 0
        for offset, sequence in enumerate(sequences):
            scheduled = start + offset * interval
            delay = scheduled - time.perf_counter_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            else:
                behind_max = max(behind_max, -delay)
            conversation = self.conversations[sequence % len(self.conversations)]
            frame = {
                "op": "send",
                "id": f"m{sequence}",
                "conversation_id": conversation.conversation_id,
                "body": f"bench {sequence} {scheduled}",
            }
            data = orjson.dumps(frame)
            self._unacked[frame["id"]] = (conversation.customer, data)
            await conversation.customer.send(data, text=True)
        if tally.round_received < total:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_s):
                    await tally.round_done.wait()
        received = tally.round_received
        return {
            "rate": rate,
            "seconds": seconds,
            "sent": total,
            "received": received,
            "lost": total - received,
            "duplicates": tally.duplicates,
            "customer_to_agent": tally.latencies.summary(),
            "sender_echo": tally.echo.summary(),
            "generator_behind_max_ms": round(behind_max / 1e6, 2),
            "errors": dict(tally.errors),
            "resent": tally.resent,
            "unacknowledged": sum(1 for s in sequences if f"m{s}" in self._unacked),
        }

    async def archived_messages(self) -> int:
        """Messages history holds for the fleet's conversations (its read model)."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            listed = await http.get(
                "/api/conversations",
                params={"view": "all", "limit": 500},
                headers={"Authorization": f"Bearer {self.owner_token}"},
            )
            listed.raise_for_status()
            mine = {c.conversation_id for c in self.conversations}
            return sum(
                int(c.get("message_count", 0))
                for c in listed.json()
                if c["conversation_id"] in mine
            )

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*(socket.close() for socket in self.sockets), return_exceptions=True)


async def _frames(socket: Any) -> AsyncIterator[bytes]:
    """The socket's frames as bytes (orjson reads them without a UTF-8 decode first), until
    it closes."""
    while True:
        try:
            yield await socket.recv(decode=False)
        except websockets.ConnectionClosed:
            return


def _parse(body: str) -> tuple[int | None, int | None]:
    parts = body.split(" ")
    if len(parts) != 3 or parts[0] != "bench":
        return None, None
    return int(parts[1]), int(parts[2])
