"""AdminService: folds the log, decides admin commands (queue ``admin``), answers queries."""

import asyncio

import structlog
from aio_pika.abc import AbstractChannel

from agent_service.admin.decisions import Rejected, decide
from agent_service.admin.passwords import Lockout
from agent_service.admin.queries import AdminQueries
from agent_service.admin.state import AdminState
from contracts import Envelope, derive_event_id
from contracts.envelope import LoggedEvent
from contracts.registry import EVENTS, parse_command_data
from relaydesk.bus import Bus, CommandReply, LogReader
from relaydesk.bus.catch_up import catch_up
from relaydesk.bus.rpc import serve_commands, serve_queries
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)

SERVICE = "admin"
STREAM_KEYS = ("agent_id", "group_id", "canned_id")


def stream_for(data: dict) -> str:
    for key in STREAM_KEYS:
        if isinstance(data.get(key), str):
            return f"{key.removesuffix('_id')}:{data[key]}"
    return "tenant"


class AdminService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = AdminState()
        self.bus: Bus | None = None
        self._reader: LogReader | None = None
        self._task: asyncio.Task[None] | None = None
        self._channels: list[AbstractChannel] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.bus = await Bus(self.settings.amqp_url, service=SERVICE, publish_timeout_s=self.settings.publish_timeout_s).connect()
        self._reader = await LogReader(self.bus, start="first", name="admin").open()
        await catch_up(self.bus, self._reader, self._fold, service=SERVICE)
        self._task = asyncio.create_task(self._follow())
        self._channels.append(await serve_commands(self.bus, SERVICE, self.handle_command))
        self._channels.append(await serve_queries(self.bus, SERVICE, AdminQueries(self.state, Lockout()).handle))
        log.info("admin_service_started", tenants=len(self.state.tenants))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self.bus:
            await self.bus.close()

    async def _fold(self, batch: list[LoggedEvent]) -> None:
        for logged in batch:
            self.state.apply(logged.envelope, logged.position)

    async def _follow(self) -> None:
        assert self._reader is not None
        async for batch in self._reader.batches():
            async with self._lock:
                await self._fold(batch)

    async def handle_command(self, command: Envelope) -> CommandReply:
        payload = parse_command_data(command)
        async with self._lock:
            if command.id in self.state.decided:  # a redelivery: same answer, nothing new
                return CommandReply(ok=True, event_ids=tuple(self.state.decided[command.id]))
            try:
                emitted = decide(self.state, command.tenant, payload)
            except Rejected as exc:
                return CommandReply(ok=False, code=exc.code, message=exc.message)
            events = [
                Envelope(
                    id=derive_event_id(command.tenant, command.id, str(i)), type=type_name, tenant=command.tenant,
                    stream=stream_for(data), actor=command.actor, correlation_id=command.correlation_id or command.id,
                    causation_id=command.id, data=data,
                )
                for i, (type_name, data) in enumerate(emitted)
            ]
            for event in events:
                EVENTS.parse_envelope(event)
            assert self.bus is not None
            await self.bus.publish_many(events)
            for event in events:
                self.state.apply(event)  # decide the next command on the new state at once
        log.info("admin_command_decided", command_type=command.type, events=len(events))
        return CommandReply(ok=True, event_ids=tuple(e.id for e in events), data={"ids": [e.data.get(k) for e in events for k in STREAM_KEYS if k in e.data][:1]})
