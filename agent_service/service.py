"""AgentService: folds the log, then decides routing commands as their single writer.

Start: read the log from the beginning up to a marker (``catch_up``), then serve queries
and commands while a background task keeps folding live events. A decision folds its
own events at once (so the next command sees them) and publishes them, confirmed,
before replying; when they come back from the log they are skipped by id.
"""

import asyncio
from collections import OrderedDict
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractChannel

from agent_service import agent_commands, conversation_commands
from agent_service.decision import Decision
from agent_service.fold import apply
from agent_service.queries import Queries
from agent_service.state import RoutingState
from agent_service.timers import Timers
from contracts.envelope import Envelope, LoggedEvent
from contracts.errors import UnknownType
from contracts.registry import parse_command_data
from relaydesk.bus import Bus, CommandReply, LogReader
from relaydesk.bus.catch_up import catch_up, marker_event
from relaydesk.bus.rpc import RpcClient, serve_commands, serve_queries
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)

SERVICE = "agent"
HANDLERS = {**conversation_commands.HANDLERS, **agent_commands.HANDLERS}
RECENT_IDS = 100_000  # publisher retries land close together; older duplicates are not expected
# After this long without deciding anything, fold up to "now" before the next decision: a
# standby instance that just became the single active consumer must first see every
# event its predecessor published.
SYNC_AFTER_IDLE_S = 1.0
SYNC_TIMEOUT_S = 10.0


class SeenIds:
    """Dedupe for the fold: our own decisions (folded before they reach the log) and recent ids."""

    def __init__(self, limit: int = RECENT_IDS) -> None:
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, event_id: str) -> None:
        self._recent[event_id] = None
        self._recent.move_to_end(event_id)
        if len(self._recent) > self._limit:
            self._recent.popitem(last=False)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._recent


class AgentService:
    """The routing single writer. ``start()`` returns once it serves; ``stop()`` undoes it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = RoutingState()
        self.bus: Bus | None = None
        self._reader: LogReader | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._channels: list[AbstractChannel] = []
        self._seen = SeenIds()
        self._timers: Timers | None = None
        self._stale = False  # a decision failed half-way: rebuild before the next one
        self._last_decided = 0.0  # loop time of the last decision
        self._markers: dict[str, asyncio.Future[None]] = {}

    async def start(self) -> None:
        self.bus = await Bus(self.settings.amqp_url, service=SERVICE, publish_timeout_s=self.settings.publish_timeout_s).connect()
        self._timers = Timers(RpcClient(self.bus), request_timeout_s=self.settings.request_timeout_s)
        await self._rebuild()
        # Commands first: once a query is answered, the command queue exists too.
        self._channels.append(await serve_commands(self.bus, SERVICE, self.handle_command))
        self._channels.append(await serve_queries(self.bus, SERVICE, Queries(lambda: self.state).handle))
        log.info("agent_service_started", position=self.state.position, tenants=len(self.state.tenants))

    async def stop(self) -> None:
        for channel in self._channels:
            if not channel.is_closed:
                await channel.close()
        self._channels.clear()
        await self._stop_following()
        if self._timers is not None:
            await self._timers.cancel_all()
        if self.bus is not None:
            await self.bus.close()

    async def _rebuild(self) -> None:
        """Fold the whole log into a fresh state, then follow it live."""
        assert self.bus is not None and self._timers is not None
        await self._stop_following()
        self.state, self._seen = RoutingState(), SeenIds()
        self._reader = await LogReader(self.bus, start="first", name="agent-routing").open()
        await catch_up(self.bus, self._reader, self._fold_batch, service=SERVICE)
        self._follow_task = asyncio.create_task(self._follow(self._reader))
        self._follow_task.add_done_callback(self._on_follow_end)
        await self._timers.cancel_all()
        self._timers.from_state(self.state)
        self._stale = False

    async def _stop_following(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
            await asyncio.gather(self._follow_task, return_exceptions=True)
            self._follow_task = None
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    async def _follow(self, reader: LogReader) -> None:
        async for batch in reader.batches():
            await self._fold_batch(batch)

    def _on_follow_end(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            log.error("log_follow_ended", error=repr(task.exception()))
            self._stale = True  # the state no longer follows the log: rebuild before deciding

    async def _sync(self) -> None:
        """Fold everything published before now (our own marker comes back through the follower)."""
        assert self.bus is not None
        marker = marker_event(SERVICE)
        arrived = self._markers[marker.id] = asyncio.get_running_loop().create_future()
        try:
            await self.bus.publish(marker)
            await asyncio.wait_for(arrived, SYNC_TIMEOUT_S)
        finally:
            self._markers.pop(marker.id, None)

    async def _fold_batch(self, batch: list[LoggedEvent]) -> None:
        for logged in batch:
            self.state.position = logged.position
            waiting = self._markers.get(logged.envelope.id)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
            if logged.envelope.id in self._seen:
                continue
            self._seen.add(logged.envelope.id)
            apply(self.state, logged.envelope)

    async def handle_command(self, command: Envelope) -> CommandReply:
        """Decide one command: same answer for a redelivery, events published before replying."""
        if self._stale:
            await self._rebuild()
        elif asyncio.get_running_loop().time() - self._last_decided > SYNC_AFTER_IDLE_S:
            await self._sync()
        payload = parse_command_data(command)  # ContractError → rejected and dead-lettered by the bus
        handler = HANDLERS.get(command.type)
        if handler is None:
            raise UnknownType(f"agent does not decide {command.type!r}", type_name=command.type)
        known = self.state.replies.get(command.id)
        if known is not None:
            log.info("command_redelivered", command_type=command.type, command_id=command.id)
            return self._with_data(known, command)
        decision = Decision(self.state, command, now=datetime.now(UTC), offer_timeout_s=self.settings.offer_timeout_s, grace_s=self.settings.disconnect_grace_s)
        try:
            handler(decision, payload)
            for event in decision.events:
                self._seen.add(event.id)
            if decision.events:
                await self.bus.publish_many(decision.events)  # type: ignore[union-attr]
        except BaseException:
            # The state already holds events the log may not: rebuild it from the log.
            self._stale = True
            raise
        assert self._timers is not None
        self._last_decided = asyncio.get_running_loop().time()
        self._timers.after_events(decision.events)
        reply = self.state.replies.get(command.id, CommandReply(ok=True))
        log.info("command_decided", command_type=command.type, ok=reply.ok, code=reply.code, events=len(decision.events))
        return self._with_data(reply, command)

    def _with_data(self, reply: CommandReply, command: Envelope) -> CommandReply:
        """Attach the conversation's current routing state, handy for the caller."""
        conversation_id = command.data.get("conversation_id")
        tenant = self.state.tenants.get(command.tenant)
        conversation = tenant.conversations.get(conversation_id) if tenant and isinstance(conversation_id, str) else None
        if conversation is None:
            return reply
        return reply.model_copy(update={"data": {"status": conversation.status, "agent_id": conversation.agent_id, "queue_position": conversation.position}})
