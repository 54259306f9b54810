"""A test desk: sends routing commands as agents/customers and watches the log."""

import asyncio
from collections.abc import Callable
from typing import Any

from agent_service.service import AgentService
from contracts import Actor, Envelope
from contracts.replies import CommandReply
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.rpc import RpcClient

TENANT = "acme"


async def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = condition()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class LogWatch:
    """Collects every event of the log in the background, for assertions.

    ``tenant`` keeps only that tenant's events: on a log shared by several tests, each
    test's watch sees its own tenant, as if the log were its own.
    """

    def __init__(self, bus: Bus, tenant: str | None = None) -> None:
        self._reader = LogReader(bus, start="first", name="test-watch")
        self._tenant = tenant
        self.events: list[Envelope] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> "LogWatch":
        await self._reader.open()
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for event in self._reader.events():
            if self._tenant is None or event.envelope.tenant == self._tenant:
                self.events.append(event.envelope)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._reader.close()

    def of(
        self, type_name: str, conversation_id: str | None = None, **fields: Any
    ) -> list[Envelope]:
        return [
            e
            for e in self.events
            if e.type == type_name
            and (conversation_id is None or e.data.get("conversation_id") == conversation_id)
            and all(e.data.get(k) == v for k, v in fields.items())
        ]

    async def wait_for(
        self, type_name: str, conversation_id: str | None = None, count: int = 1, **fields: Any
    ) -> list[Envelope]:
        return await wait_until(
            lambda: (
                (found := self.of(type_name, conversation_id, **fields))
                and len(found) >= count
                and found
            ),
            what=f"{count}x {type_name} {fields}",
        )

    def caused_by(self, command_id: str) -> list[Envelope]:
        return [e for e in self.events if e.causation_id == command_id]


class Desk:
    """Sends commands and queries to the routing service as a gateway would."""

    def __init__(self, bus: Bus, tenant: str = TENANT) -> None:
        self.bus = bus
        self.tenant = tenant
        self.rpc = RpcClient(bus)

    def command(
        self, type_name: str, data: dict[str, Any], actor: Actor, *, command_id: str | None = None
    ) -> Envelope:
        fields: dict[str, Any] = {
            "type": type_name,
            "tenant": self.tenant,
            "stream": f"conv:{data.get('conversation_id', 'x')}",
            "actor": actor,
            "data": data,
        }
        if command_id is not None:
            fields["id"] = command_id
        return Envelope(**fields)

    async def send(self, envelope: Envelope) -> CommandReply:
        return await self.rpc.command("agent", envelope, timeout=10)

    async def do(self, type_name: str, data: dict[str, Any], actor: Actor) -> CommandReply:
        return await self.send(self.command(type_name, data, actor))

    async def publish_admin(
        self, type_name: str, data: dict[str, Any], stream: str = "tenant"
    ) -> None:
        """Events the admin side would publish (agents, groups, tenant settings)."""
        await self.bus.publish(
            Envelope(
                type=type_name,
                tenant=self.tenant,
                stream=stream,
                actor=Actor(kind="admin", id="root"),
                data=data,
            )
        )

    async def online(self, agent_id: str, max_chats: int | None = None) -> CommandReply:
        data: dict[str, Any] = {"agent_id": agent_id, "status": "online"}
        if max_chats:
            data["max_chats"] = max_chats
        return await self.do("agent.set_status", data, agent(agent_id))

    async def request(
        self, conversation_id: str, visitor_id: str | None = None, **extra: Any
    ) -> CommandReply:
        visitor = visitor_id or f"v-{conversation_id}"
        data = {"conversation_id": conversation_id, "visitor": {"id": visitor}, **extra}
        return await self.do("conversation.request", data, customer(visitor))

    async def accept(self, conversation_id: str, agent_id: str) -> CommandReply:
        return await self.do(
            "conversation.accept",
            {"conversation_id": conversation_id, "agent_id": agent_id},
            agent(agent_id),
        )

    async def decline(self, conversation_id: str, agent_id: str) -> CommandReply:
        return await self.do(
            "conversation.decline",
            {"conversation_id": conversation_id, "agent_id": agent_id},
            agent(agent_id),
        )

    async def close(self, conversation_id: str, agent_id: str) -> CommandReply:
        return await self.do(
            "conversation.close",
            {"conversation_id": conversation_id, "closed_by": "agent"},
            agent(agent_id),
        )

    async def query(self, name: str, **params: Any) -> Any:
        return await self.rpc.query("agent", name, {"tenant": self.tenant, **params})

    async def state(self, conversation_id: str) -> dict[str, Any]:
        return await self.query("conversation.state", conversation_id=conversation_id)


def agent(agent_id: str) -> Actor:
    return Actor(kind="agent", id=agent_id)


def customer(visitor_id: str) -> Actor:
    return Actor(kind="customer", id=visitor_id)


async def set_tenant_settings(desk: Desk, service: AgentService, **after: Any) -> None:
    """Publish a settings change as the admin side does, and wait until routing folded it."""
    await desk.publish_admin("tenant.settings_changed", {"before": {}, "after": after})
    await wait_until(
        lambda: all(
            service.state.tenant(desk.tenant).settings.get(k) == v for k, v in after.items()
        ),
        what=f"settings {after} folded",
    )
