"""A client that behaves like the widget and console under faults, and the tally of what it saw.

It reconnects (to the next gateway in its list) with ``resume_from`` = the last position it
received, and resends a command with the *same* idempotency key until it is acked. Every
event delivery is recorded raw, so a duplicate delivery or a missing message is counted
exactly as a user would notice it.
"""

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import websockets

RETRYABLE = {"unavailable", "internal", "rate_limited"}


class ResilientClient:
    def __init__(self, urls: list[str], token: str, origin: str) -> None:
        self.urls, self.token, self.origin = urls, token, origin
        self.position: int | None = None
        self.deliveries: list[
            dict[str, Any]
        ] = []  # every event frame received, duplicates included
        self.reconnects = 0
        self.retries = 0  # commands resent (same key) after a timeout, a drop or a retryable error
        self.resyncs = 0
        self.close_codes: list[int | str | None] = []  # why each connection ended
        self._socket: Any = None
        self._connected = asyncio.Event()
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._url_index = 0
        self._task: asyncio.Task[None] | None = None
        self._keys = itertools.count()
        # Called with each event frame as it arrives: a fault test can strike at that exact moment.
        self.on_event: Callable[[dict[str, Any]], None] | None = None

    async def start(self) -> "ResilientClient":
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._connected.wait(), 15)
        return self

    async def _run(self) -> None:
        first = True
        while True:
            url = self.urls[self._url_index % len(self.urls)]
            query = f"?token={self.token}" + (
                f"&resume_from={self.position}" if self.position is not None else ""
            )
            try:
                async with websockets.connect(
                    url + query, origin=self.origin, open_timeout=5, max_size=2**22
                ) as socket:
                    self._socket = socket
                    if not first:
                        self.reconnects += 1
                    first = False
                    async for raw in socket:
                        self._receive(orjson.loads(raw))
                    self.close_codes.append(socket.close_code)
            except websockets.ConnectionClosed as exc:
                self.close_codes.append(exc.rcvd.code if exc.rcvd else type(exc).__name__)
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                self.close_codes.append(type(exc).__name__)
            self._socket = None
            self._connected.clear()
            self._url_index += 1  # the next gateway, like a load balancer would pick
            await asyncio.sleep(0.2)

    def _receive(self, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        if kind == "hello":
            if self.position is None:
                self.position = frame["position"]
            self._connected.set()
        elif kind == "event":
            self.deliveries.append(frame)
            self.position = max(self.position or -1, frame["position"])
            if self.on_event is not None:
                self.on_event(frame)
        elif kind == "resync":
            self.resyncs += 1
        elif kind in ("ack", "error") and frame.get("id") in self._replies:
            future = self._replies[frame["id"]]
            if not future.done():
                future.set_result(frame)

    async def op(
        self, op: str, key: str | None = None, deadline_s: float = 90, **fields: Any
    ) -> dict[str, Any]:
        """Send until acked (same key every time); a non-retryable error is returned as is."""
        key = key or f"k{next(self._keys)}-{id(self)}"
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + deadline_s
        attempts = 0
        while loop.time() < stop_at:
            attempts += 1
            if attempts > 1:
                self.retries += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), 5)
            socket = self._socket
            if socket is None:
                continue
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._replies[key] = future
            try:
                await socket.send(orjson.dumps({"op": op, "id": key, **fields}).decode())
                reply = await asyncio.wait_for(future, 8)
            except (TimeoutError, websockets.WebSocketException, OSError):
                continue
            finally:
                self._replies.pop(key, None)
            if reply["t"] == "ack" or reply.get("code") not in RETRYABLE:
                return reply
            await asyncio.sleep(0.3)
        raise AssertionError(f"{op} {key} was never acked")

    async def wait_event(self, type_name: str, timeout: float = 30, **data: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.deliveries:
                    event = frame["event"]
                    if event["type"] == type_name and all(
                        event["data"].get(k) == v for k, v in data.items()
                    ):
                        return frame
                await asyncio.sleep(0.05)

    def bodies(self, author_kind: str) -> Counter[str]:
        """How many times each message body was delivered (a duplicate shows as 2)."""
        return Counter(
            f["event"]["data"]["body"]
            for f in self.deliveries
            if f["event"]["type"] == "message.sent"
            and f["event"]["data"]["author_kind"] == author_kind
        )

    @property
    def recovered(self) -> int:
        return self.reconnects + self.retries

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class FaultReport:
    scenario: str
    sent: int
    lost: int
    duplicated: int
    recovered: int

    def __str__(self) -> str:
        return (
            f"FAULT {self.scenario}: sent={self.sent} lost={self.lost}"
            f" duplicated={self.duplicated} recovered={self.recovered}"
        )


def tally(scenario: str, sent: list[str], seen: Counter[str], recovered: int) -> FaultReport:
    report = FaultReport(
        scenario,
        len(sent),
        sum(1 for body in sent if seen[body] == 0),
        sum(n - 1 for n in seen.values() if n > 1),
        recovered,
    )
    print(report)
    return report
