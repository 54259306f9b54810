"""Open-loop chat load over the real system: customers send, agents receive.

Each conversation is one customer websocket and an agent's websocket (an agent holds up
to ``chats_per_agent`` conversations, like a console). Messages are scheduled at a fixed
rate and the latency is measured from the *scheduled* send time, so a stalled generator
or server shows up as latency instead of hiding it (no coordinated omission). Every
message carries its sequence number; the agents' side counts lost and duplicated ones.

The generator shares the machine with the system it measures, so it is kept cheap: its
sockets are picows clients (``tools/bench/ws_client.py``) that hand each frame to a function
as it arrives, frames go out as the UTF-8 bytes orjson writes and come in as bytes for
orjson, and the wait for a round's last messages counts arrivals as they come instead of
rescanning every sequence.
"""

import asyncio
import contextlib
import functools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from contracts.events.conversation import ConversationAccepted, ConversationOffered
from contracts.events.message import MessageSent
from tools.bench.stats import Latencies
from tools.bench.ws_client import BenchSocket, connect

TENANT = "demo"
RESEND_CODES = frozenset({"unavailable", "rate_limited"})
RESEND_AFTER_S = 0.2


@dataclass
class Conversation:
    customer: BenchSocket
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
        self.sockets: list[BenchSocket] = []
        self.tally = Tally()
        self._accepted: asyncio.Queue[str] = asyncio.Queue()
        self.owner_token = ""
        # Sends not acknowledged yet, by idempotency key: like the widget's outbox, a send
        # the gateway answers "unavailable" (or "rate_limited") is resent with the same
        # key, so the count of lost messages means "acknowledged and never delivered".
        self._unacked: dict[str, tuple[BenchSocket, bytes]] = {}

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
                agent = await connect(f"{self._ws_url()}?token={token}", self.base_url)
                hello = orjson.loads(await agent.recv())
                self.sockets.append(agent)
                agent.deliver_to(functools.partial(self._on_agent_frame, hello["session"]["id"]))
                agent.send(
                    orjson.dumps(
                        {
                            "op": "status",
                            "id": f"status-{token[-12:]}",
                            "status": "online",
                            "max_chats": self.chats_per_agent,
                        }
                    )
                )
            customers = []
            for _ in range(self.size):
                session = (
                    await http.post("/api/visitor/session", json={"tenant": self.tenant})
                ).json()
                customer = await connect(
                    f"{self._ws_url()}?token={session['visitor_token']}", "https://shop.example"
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
            conversation.customer.deliver_to(self._on_customer_frame)

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

    async def _start(self, customer: BenchSocket, index: int) -> str:
        customer.send(
            orjson.dumps(
                {"op": "start", "id": f"start-{index}", "visitor": {"name": f"Customer {index}"}}
            )
        )
        while True:
            frame = orjson.loads(await customer.recv())
            if frame.get("t") == "ack" and frame.get("id") == f"start-{index}":
                return str(frame["conversation_id"])
            if frame.get("t") == "error" and frame.get("id") == f"start-{index}":
                raise RuntimeError(f"start refused: {frame}")

    def _on_agent_frame(self, agent_id: str, agent: BenchSocket, raw: bytes) -> None:
        received = time.perf_counter_ns()
        tally = self.tally
        frame = orjson.loads(raw)
        if frame.get("t") != "event":
            return
        event = frame["event"]
        kind, data = event["type"], event["data"]
        if kind == MessageSent.TYPE and data.get("author_kind") == "customer":
            sequence, scheduled = _parse(data["body"])
            if sequence is None:
                return
            if sequence in tally.seen:
                tally.duplicates += 1
                return
            tally.seen.add(sequence)
            if sequence in tally.round:
                tally.round_received += 1
                if tally.round_received == len(tally.round):
                    tally.round_done.set()
            if tally.measuring and scheduled is not None:
                tally.latencies.record_ns(received - scheduled)
        elif kind == ConversationOffered.TYPE:
            if agent_id in data["agent_ids"]:
                agent.send(
                    orjson.dumps(
                        {
                            "op": "accept",
                            "id": f"accept-{data['conversation_id']}",
                            "conversation_id": data["conversation_id"],
                        }
                    )
                )
        elif kind == ConversationAccepted.TYPE:
            self._accepted.put_nowait(data["conversation_id"])

    def _on_customer_frame(self, customer: BenchSocket, raw: bytes) -> None:
        received = time.perf_counter_ns()
        tally = self.tally
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
                socket, data = unacked
                asyncio.get_running_loop().call_later(RESEND_AFTER_S, socket.send, data)
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
            conversation.customer.send(data)
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
            listed = await self._list_conversations(http)
            if listed.status_code == 401:
                # The owner's access token lives 15 minutes (RELAYDESK_ACCESS_TOKEN_TTL_S) and
                # a full bench runs longer: its history check after the 2,000 msg/s step was
                # refused. Signed in again, as the console does.
                self.owner_token = await self._login(http, self.owner_email, self.owner_password)
                listed = await self._list_conversations(http)
            listed.raise_for_status()
            mine = {c.conversation_id for c in self.conversations}
            return sum(
                int(c.get("message_count", 0))
                for c in listed.json()
                if c["conversation_id"] in mine
            )

    async def _list_conversations(self, http: httpx.AsyncClient) -> httpx.Response:
        return await http.get(
            "/api/conversations",
            params={"view": "all", "limit": 500},
            headers={"Authorization": f"Bearer {self.owner_token}"},
        )

    async def close(self) -> None:
        await asyncio.gather(*(socket.close() for socket in self.sockets), return_exceptions=True)


def _parse(body: str) -> tuple[int | None, int | None]:
    parts = body.split(" ")
    if len(parts) != 3 or parts[0] != "bench":
        return None, None
    return int(parts[1]), int(parts[2])
