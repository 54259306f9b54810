"""A small real websocket client for tests: send ops, wait for acks and events."""

import asyncio
import itertools
from typing import Any

import orjson
import websockets


class Client:
    def __init__(self, connection: websockets.ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self._keys = itertools.count()
        self.closed_code: int | None = None

    @classmethod
    async def connect(
        cls, url: str, token: str, resume_from: int | None = None, origin: str | None = None
    ) -> "Client":
        query = f"?token={token}" + (
            f"&resume_from={resume_from}" if resume_from is not None else ""
        )
        headers = {"Origin": origin} if origin else None
        connection = await websockets.connect(
            url + query, additional_headers=headers, max_size=2**22
        )
        client = cls(connection)
        await client.wait_for(lambda f: f["t"] == "hello")
        return client

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                async with self._arrived:
                    self.frames.append(orjson.loads(raw))
                    self._arrived.notify_all()
        except websockets.ConnectionClosed as exc:
            self.closed_code = exc.rcvd.code if exc.rcvd else None
        finally:
            if self.closed_code is None and self.connection.close_code is not None:
                self.closed_code = self.connection.close_code
            async with self._arrived:
                self._arrived.notify_all()

    async def wait_for(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        async with self._arrived:
            async with asyncio.timeout(timeout):
                while True:
                    for frame in self.frames:
                        if predicate(frame):
                            return frame
                    await self._arrived.wait()

    async def wait_closed(self, timeout: float = 10) -> int | None:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.closed_code

    async def op(self, op: str, key: str | None = None, **fields: Any) -> dict[str, Any]:
        key = key or f"k{next(self._keys)}-{id(self)}"
        await self.connection.send(orjson.dumps({"op": op, "id": key, **fields}).decode())
        return await self.wait_for(lambda f: f.get("id") == key and f["t"] in ("ack", "error"))

    def events(self, type_name: str | None = None) -> list[dict[str, Any]]:
        return [
            f
            for f in self.frames
            if f["t"] == "event" and (type_name is None or f["event"]["type"] == type_name)
        ]

    async def wait_event(self, type_name: str, timeout: float = 10, **data: Any) -> dict[str, Any]:
        return await self.wait_for(
            lambda f: (
                f["t"] == "event"
                and f["event"]["type"] == type_name
                and all(f["event"]["data"].get(k) == v for k, v in data.items())
            ),
            timeout,
        )

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()
