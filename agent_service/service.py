"""AgentService: folds the log, then decides routing commands as their single writer.

Start: rebuild the state (snapshot, then the log after it, up to a marker), then serve
commands and queries while the projection keeps folding live events. Commands are decided
by the decider runtime (relaydesk/decider.py) with routing's decider
(agent_service/decider.py): a decision folds its own events at once (so the next command
sees them) and publishes them, confirmed, before replying.
"""

from collections.abc import Sequence

import structlog
from aio_pika.abc import AbstractChannel
from pymongo import AsyncMongoClient

from agent_service.decider import RoutingDecider
from agent_service.fold import SERVICE
from agent_service.projection import Projection
from agent_service.queries import Queries
from agent_service.snapshot import SnapshotSchedule, SnapshotStore, Snapshotter
from agent_service.state import RoutingState
from agent_service.timers import Timers
from contracts.envelope import Envelope
from contracts.events.conversation import (
    ConversationAccepted,
    ConversationMissed,
    ConversationOffered,
    ConversationQueued,
    ConversationTransferred,
    OfferDeclined,
    OfferWithdrawn,
)
from contracts.plans import PlanCatalogue
from contracts.replies import CommandReply
from relaydesk.archived import ArchivedLog
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient, serve_commands, serve_queries
from relaydesk.bus.shared_log import SharedLog
from relaydesk.decider import DeciderRuntime
from relaydesk.health import Readiness
from relaydesk.metrics import ROUTING_DECISIONS, series
from relaydesk.queries import QueryAnswers
from relaydesk.settings import Settings
from relaydesk.store import database, make_client

log = structlog.get_logger(__name__)

# Routing events counted on relaydesk_routing_decisions_total, by its ``decision`` label.
ROUTING_DECISION = {
    ConversationOffered.TYPE: "offered",
    OfferDeclined.TYPE: "offer_declined",
    OfferWithdrawn.TYPE: "offer_withdrawn",
    ConversationAccepted.TYPE: "accepted",
    ConversationTransferred.TYPE: "transferred",
    ConversationQueued.TYPE: "queued",
    ConversationMissed.TYPE: "missed",
}

SNAPSHOT_EVERY = 1000  # events folded between snapshots
SNAPSHOT_MIN_INTERVAL_S = 10.0  # and no sooner than this after the last one (SnapshotSchedule)


class AgentService:
    """The routing single writer. ``start()`` returns once it serves; ``stop()`` undoes it.

    Args:
        settings: run-time settings; with ``mongo_url`` set, state snapshots are kept in
            MongoDB (collection ``agent_routing_snapshots``).
        snapshot_every: events folded between two snapshots.
        snapshot_min_interval_s: and the least time between two.
        shared_log: the process's one subscription to the log, shared with administration
            (default: a reader of its own).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        snapshot_every: int = SNAPSHOT_EVERY,
        snapshot_min_interval_s: float = SNAPSHOT_MIN_INTERVAL_S,
        shared_log: SharedLog | None = None,
    ) -> None:
        self.settings = settings
        self._shared_log = shared_log
        self.bus: Bus | None = None
        self.projection: Projection | None = None
        self._snapshot_schedule = SnapshotSchedule(snapshot_every, snapshot_min_interval_s)
        self._mongo: AsyncMongoClient | None = None
        self._channels: list[AbstractChannel] = []
        self._timers: Timers | None = None
        self._runtime: DeciderRuntime | None = None
        self.plans = PlanCatalogue.load(settings.plans_file)

    @property
    def state(self) -> RoutingState:
        assert self.projection is not None, "start() first"
        return self.projection.state

    async def start(self) -> None:
        self.bus = await Bus.from_settings(self.settings, service=SERVICE).connect()
        self._timers = Timers(
            RpcClient(self.bus), request_timeout_s=self.settings.request_timeout_s
        )
        snapshotter = self._snapshotter()
        if snapshotter is not None:
            await snapshotter.store.bind()  # init_beanie for routing's documents, once
        self.projection = Projection(
            self.bus,
            SERVICE,
            snapshotter,
            self._shared_log,
            on_live=self._timers.after_folded,
            archive=self._archive(),
        )
        decider = RoutingDecider(
            lambda: self.state,
            offer_timeout_s=self.settings.offer_timeout_s,
            grace_s=self.settings.disconnect_grace_s,
            plans=self.plans,
            projection=self.projection,
            timers=self._timers,
        )
        self._runtime = DeciderRuntime(decider, self._publish)
        await decider.rebuild()
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

    def watch(self, readiness: Readiness) -> None:
        assert self.bus is not None, "start() first"
        readiness.broker(SERVICE, self.bus)
        readiness.reader(SERVICE, lambda: self.projection.reader if self.projection else None)
        readiness.command_queue(SERVICE, self.bus, SERVICE)
        if self._mongo is not None:
            readiness.store(SERVICE, self._mongo)

    def _archive(self) -> ArchivedLog | None:
        """What a snapshot older than the stream's retention needs (relaydesk/archived.py)."""
        if self._mongo is None:
            return None
        return ArchivedLog(database(self._mongo, self.settings.mongo_db))

    def _snapshotter(self) -> Snapshotter | None:
        if not self.settings.mongo_url:
            return None
        self._mongo = make_client(self.settings.mongo_url)
        return Snapshotter(
            SnapshotStore(database(self._mongo, self.settings.mongo_db)), self._snapshot_schedule
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

    async def _publish(self, events: Sequence[Envelope]) -> None:
        assert self.bus is not None, "start() first"
        await self.bus.publish_many(events)
        for event in events:
            decision = ROUTING_DECISION.get(event.type)
            if decision is not None:
                series(ROUTING_DECISIONS, decision).inc()

    async def handle_command(self, command: Envelope) -> CommandReply:
        """Decide one command: same answer for a redelivery, events published before replying."""
        assert self._runtime is not None, "start() first"
        return await self._runtime.handle(command)
