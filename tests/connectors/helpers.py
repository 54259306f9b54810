"""Log watching and small waits for connector tests (conditions with deadlines, no sleeps)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from contracts.envelope import Actor, Envelope
from contracts.ids import new_event_id
from relaydesk.attachments import AttachmentStore, StoredAttachment
from relaydesk.bus import Bus
from relaydesk.bus.log_reader import LogReader


async def eventually(
    condition: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition"
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def eventually_async(
    fetch: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool], *, timeout: float = 10.0
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    pause = 0.02  # growing to 200 ms: a fetch is a request (tests/admin/helpers.py eventually)
    while not accept(value := await fetch()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; last value {value!r}")
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.2)
    return value


class LogWatch:
    """Collects every event on the real log, in order."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.events: list[Envelope] = []
        self._reader: LogReader | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> "LogWatch":
        self._reader = await LogReader(self._bus, start="first", name="test-watch").open()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._reader is not None
        async for batch in self._reader.batches():
            self.events.extend(event.envelope for event in batch)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._reader is not None:
            await self._reader.close()

    def of(self, type_name: str, **match: Any) -> list[Envelope]:
        return [
            e
            for e in self.events
            if e.type == type_name and all(e.data.get(k) == v for k, v in match.items())
        ]

    async def wait_for(
        self, type_name: str, count: int = 1, timeout: float = 10.0, **match: Any
    ) -> list[Envelope]:
        return await eventually(
            lambda: found if len(found := self.of(type_name, **match)) >= count else None,
            timeout=timeout,
            what=f"{count}× {type_name} {match}",
        )


def agent_message(tenant: str, conversation_id: str, body: str) -> Envelope:
    """What the gateway publishes when an agent sends a message."""
    return Envelope(
        type="message.sent",
        v=2,
        tenant=tenant,
        stream=f"conv:{conversation_id}",
        actor=Actor(kind="agent", id="agent-1"),
        data={
            "conversation_id": conversation_id,
            "message_id": new_event_id(),
            "body": body,
            "author_kind": "agent",
            "author_id": "agent-1",
        },
    )


async def agent_reply(bus: Bus, tenant: str, conversation_id: str, body: str) -> str:
    """Publish an agent's message; its message id."""
    message = agent_message(tenant, conversation_id, body)
    await bus.publish(message)
    return str(message.data["message_id"])


async def agent_attachment(
    bus: Bus,
    files: AttachmentStore,
    tenant: str,
    conversation_id: str,
    filename: str,
    content_type: str,
    content: bytes,
) -> str:
    """What the gateway does when an agent uploads a file: store it, then publish
    ``message.attachment_sent``. Returns the message id."""
    message_id = new_event_id()
    attachment_id = "a" + new_event_id()[1:]
    stored = StoredAttachment(
        attachment_id, tenant, conversation_id, filename, content_type, len(content)
    )
    await files.save(stored, content)
    await bus.publish(
        Envelope(
            type="message.attachment_sent",
            tenant=tenant,
            stream=f"conv:{conversation_id}",
            actor=Actor(kind="agent", id="agent-1"),
            data={
                "conversation_id": conversation_id,
                "message_id": message_id,
                "attachment_id": attachment_id,
                "filename": filename,
                "content_type": content_type,
                "size": len(content),
                "author_kind": "agent",
                "author_id": "agent-1",
            },
        )
    )
    return message_id
