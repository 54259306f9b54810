"""AgentService: folds the log, then decides routing commands as their single writer.

Start: rebuild the state (snapshot, then the log after it, up to a marker), then serve
commands and queries while the projection keeps folding live events. A decision folds
its own events at once (so the next command sees them) and publishes them, confirmed,
before replying.
"""

import asyncio
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractChannel
from pymongo import AsyncMongoClient

from agent_service import agent_commands, conversation_commands
from agent_service.decision import Decision
from agent_service.projection import Projection
from agent_service.queries import Queries
from agent_service.snapshot import SnapshotStore, Snapshotter
from agent_service.state import RoutingState
from agent_service.timers import Timers
from contracts.envelope import Envelope
from contracts.errors import UnknownType
from contracts.plans import PlanCatalogue
from contracts.registry import parse_command_data
from contracts.replies import CommandReply
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient, serve_commands, serve_queries
from relaydesk.queries import QueryAnswers
from relaydesk.settings import Settings
from relaydesk.store import database, make_client

log = structlog.get_logger(__name__)

SERVICE = "agent"
HANDLERS = {**conversation_commands.HANDLERS, **agent_commands.HANDLERS}
# After this long without deciding anything, fold up to "now" before the next decision: a
# standby instance that just became the single active consumer must first see every
# event its predecessor published.
SYNC_AFTER_IDLE_S = 1.0
SNAPSHOT_EVERY = 1000  # events folded between snapshots


class AgentService:
    """The routing single writer. ``start()`` returns once it serves; ``stop()`` undoes it.

    Args:
        settings: run-time settings; with ``mongo_url`` set, state snapshots are kept in
            MongoDB (collection ``agent_routing_snapshots``).
        snapshot_every: events folded between two snapshots.
    """

    def __init__(self, settings: Settings, *, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        self.settings = settings
        self.bus: Bus | None = None
        self.projection: Projection | None = None
        self._snapshot_every = snapshot_every
        self._mongo: AsyncMongoClient | None = None
        self._channels: list[AbstractChannel] = []
        self._timers: Timers | None = None
        self._last_decided = 0.0  # loop time of the last decision
        self.plans = PlanCatalogue.load(settings.plans_file)

    @property
    def state(self) -> RoutingState:
        assert self.projection is not None, "start() first"
        return self.projection.state

    async def start(self) -> None:
        self.bus = await Bus(
            self.settings.amqp_url,
            service=SERVICE,
            publish_timeout_s=self.settings.publish_timeout_s,
            stream_url=self.settings.stream_url,
        ).connect()
        self._timers = Timers(
            RpcClient(self.bus), request_timeout_s=self.settings.request_timeout_s
        )
        self.projection = Projection(self.bus, SERVICE, self._snapshotter())
        await self._rebuild()
        # Commands first: once a query is answered, the command queue exists too.
        self._channels.append(await serve_commands(self.bus, SERVICE, self.handle_command))
        self._channels.append(
            await serve_queries(
                self.bus, SERVICE, QueryAnswers(SERVICE, Queries(lambda: self.state)).handle
            )
        )
        log.info(
            "agent_service_started", position=self.state.position, tenants=len(self.state.tenants)
        )

    def _snapshotter(self) -> Snapshotter | None:
        if not self.settings.mongo_url:
            return None
        self._mongo = make_client(self.settings.mongo_url)
        return Snapshotter(
            SnapshotStore(database(self._mongo, self.settings.mongo_db)), self._snapshot_every
        )

    async def stop(self) -> None:
        for channel in self._channels:
            if not channel.is_closed:
                await channel.close()
        self._channels.clear()
        if self._timers is not None:
            await self._timers.cancel_all()
        if self.projection is not None:
            await self.projection.stop()
        if self.bus is not None:
            await self.bus.close()
        if self._mongo is not None:
            await self._mongo.close()
            self._mongo = None

    async def _rebuild(self) -> None:
        assert self.projection is not None and self._timers is not None
        await self._timers.cancel_all()
        await self.projection.rebuild()
        self._timers.from_state(
            self.state
        )  # standing offers and grace periods get their timers again

    async def handle_command(self, command: Envelope) -> CommandReply:
        """Decide one command: same answer for a redelivery, events published before replying."""
        assert self.projection is not None and self._timers is not None and self.bus is not None
        if self.projection.stale:
            await self._rebuild()
        elif asyncio.get_running_loop().time() - self._last_decided > SYNC_AFTER_IDLE_S:
            await self.projection.sync()
        payload = parse_command_data(
            command
        )  # ContractError → rejected and dead-lettered by the bus
        handler = HANDLERS.get(command.type)
        if handler is None:
            raise UnknownType(f"agent does not decide {command.type!r}", type_name=command.type)
        known = self.state.replies.get(command.id)
        if known is not None:
            log.info("command_redelivered", command_type=command.type, command_id=command.id)
            return self._with_data(known, command)
        decision = Decision(
            self.state,
            command,
            now=datetime.now(UTC),
            offer_timeout_s=self.settings.offer_timeout_s,
            grace_s=self.settings.disconnect_grace_s,
            plans=self.plans,
        )
        try:
            handler(decision, payload)
            self.projection.expect([event.id for event in decision.events])
            if decision.events:
                await self.bus.publish_many(decision.events)
        except BaseException:
            self.projection.stale = True  # the state may hold events the log does not
            raise
        self._last_decided = asyncio.get_running_loop().time()
        self._timers.after_events(decision.events)
        reply = self.state.replies.get(command.id, CommandReply(ok=True))
        log.info(
            "command_decided",
            command_type=command.type,
            ok=reply.ok,
            code=reply.code,
            events=len(decision.events),
        )
        return self._with_data(reply, command)

    def _with_data(self, reply: CommandReply, command: Envelope) -> CommandReply:
        """Attach the conversation's current routing state, handy for the caller."""
        conversation_id = command.data.get("conversation_id")
        tenant = self.state.tenants.get(command.tenant)
        conversation = (
            tenant.conversations.get(conversation_id)
            if tenant and isinstance(conversation_id, str)
            else None
        )
        if conversation is None:
            return reply
        return reply.model_copy(
            update={
                "data": {
                    "status": conversation.status,
                    "agent_id": conversation.agent_id,
                    "queue_position": conversation.position,
                }
            }
        )
