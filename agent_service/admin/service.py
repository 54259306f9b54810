"""AdminService: folds the log, decides admin commands (queue ``admin``), answers queries.

Commands are decided by the decider runtime (relaydesk/decider.py) with the admin decider
(``decider.py``); a lock keeps the log follower's folds out of a decision in progress.
With MongoDB, a snapshot of the state is kept (``snapshot.py``) and a start folds only the
log after its position; without one (or with one it cannot use) it folds the whole log.
"""

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractChannel
from pymongo import AsyncMongoClient

from agent_service.admin.decider import AdminDecider
from agent_service.admin.lockout import Lockout, LoginFailures, MemoryLockout, StoredLockout
from agent_service.admin.queries import AdminQueries
from agent_service.admin.snapshot import AdminSnapshots, AdminSnapshotter
from agent_service.admin.state import SERVICE, AdminState
from contracts import Envelope
from contracts.envelope import LoggedEvent
from contracts.plans import PlanCatalogue
from contracts.replies import CommandReply
from outbound_webhooks.dispatcher import WebhookDispatcher
from outbound_webhooks.worker import RetryPolicy
from relaydesk.archived import ArchivedLog
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import catch_up
from relaydesk.bus.log_reader import Start
from relaydesk.bus.rpc import serve_commands, serve_queries
from relaydesk.bus.shared_log import SharedLog
from relaydesk.decider import DeciderRuntime
from relaydesk.health import Readiness
from relaydesk.keys import key_ring
from relaydesk.net_guard import TargetPolicy
from relaydesk.queries import QueryAnswers
from relaydesk.settings import Settings
from relaydesk.snapshots import SnapshotSchedule
from relaydesk.store import bind_documents, database, make_client, with_store_retry

log = structlog.get_logger(__name__)

SNAPSHOT_EVERY = 1000  # events folded between snapshots (as routing's and billing's)
SNAPSHOT_MIN_INTERVAL_S = 10.0  # and no sooner than this after the last one


class AdminService:
    """The ``admin`` single writer, its queries and the outbound webhook workers.

    Args:
        webhook_policy: delivery timeout and retry backoff (default: ``RetryPolicy()``,
            0.25 s doubling to 60 s).
        catalogue: the plans whose ``agent_seats`` limit is enforced (default:
            ``settings.plans_file``).
        clock: the decision time: sign-up expiry, plan changes with an effective date
            (default: now, UTC).
        targets: where webhooks may go (default: from the settings: public addresses, and
            the operator's ``webhook_allowed_networks``).
        shared_log: the process's one subscription to the log, shared with routing
            (default: a reader of its own).
        snapshot_every, snapshot_min_interval_s: when a snapshot of the state is due (with
            ``mongo_url`` set; relaydesk/snapshots.py SnapshotSchedule).
    """

    def __init__(
        self,
        settings: Settings,
        webhook_policy: RetryPolicy | None = None,
        *,
        catalogue: PlanCatalogue | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        targets: TargetPolicy | None = None,
        shared_log: SharedLog | None = None,
        snapshot_every: int = SNAPSHOT_EVERY,
        snapshot_min_interval_s: float = SNAPSHOT_MIN_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self._targets = targets or TargetPolicy.from_settings(settings)
        self.catalogue = catalogue or PlanCatalogue.load(settings.plans_file)
        self._webhook_policy = webhook_policy
        self._shared_log = shared_log
        self.webhooks: WebhookDispatcher | None = None
        self._mongo: AsyncMongoClient | None = None
        self._clock = clock
        self._use(AdminState())
        self._schedule = SnapshotSchedule(snapshot_every, snapshot_min_interval_s)
        self.snapshotter: AdminSnapshotter | None = None
        self.restored_from: int | None = None  # the snapshot position of the last start
        self.folded_at_start = 0  # log entries the last start folded (after the snapshot)
        self._folded = 0  # log entries folded since the start
        self._synced_webhook_version = -1  # the state's webhook_version the workers follow
        self.webhook_syncs = 0  # how often the workers were synced (observable in tests)
        self.bus: Bus | None = None
        self._reader: LogReader | None = None
        self._task: asyncio.Task[None] | None = None
        self._channels: list[AbstractChannel] = []
        self._lock = asyncio.Lock()
        self._runtime: DeciderRuntime | None = None
        self.lockout: Lockout | None = None

    def _use(self, state: AdminState) -> None:
        self.state = state
        self.decider = AdminDecider(
            state,
            mode=self.settings.mode,
            catalogue=self.catalogue,
            clock=self._clock,
            targets=self._targets,
            on_folded=self._sync_webhooks,
        )

    async def start(self) -> None:
        self.bus = await Bus.from_settings(self.settings, service=SERVICE).connect()
        self._start_webhooks()
        if self.webhooks is not None:
            await self.webhooks.bind()  # init_beanie for the webhook documents, once
        start = await self._restore()
        self._runtime = DeciderRuntime(self.decider, self._publish)
        self._reader = await LogReader(
            self.bus, start=start, name="admin", shared=self._shared_log
        ).open()
        archive = (
            ArchivedLog(database(self._mongo, self.settings.mongo_db)) if self._mongo else None
        )  # agents, groups and settings older than the stream's retention
        await catch_up(self.bus, self._reader, self._fold, service=SERVICE, archive=archive)
        self.folded_at_start = self._folded
        log.info(
            "admin_state_restored",
            snapshot_position=self.restored_from,
            folded=self.folded_at_start,
        )
        self._maybe_snapshot()
        self._task = asyncio.create_task(self._follow())
        self._channels.append(await serve_commands(self.bus, SERVICE, self.handle_command))
        self.lockout = await self._start_lockout()
        self._channels.append(
            await serve_queries(
                self.bus,
                SERVICE,
                QueryAnswers(SERVICE, AdminQueries(self.state, self.lockout, self.webhooks)).handle,
            )
        )
        log.info("admin_service_started", tenants=len(self.state.tenants))

    async def _restore(self) -> Start:
        """The state of the latest snapshot (if any), and where the log is read from."""
        self._use(AdminState())
        self.restored_from, self.folded_at_start, self._folded = None, 0, 0
        self._synced_webhook_version = -1  # this start's workers follow the restored state
        if self._mongo is None:
            return "first"
        store = AdminSnapshots(database(self._mongo, self.settings.mongo_db))
        await store.bind()
        self.snapshotter = AdminSnapshotter(store, self._schedule)
        restored = await store.load()
        if restored is None:
            return "first"
        self._use(restored[0])
        self.restored_from = self.state.position
        return self.state.position + 1

    def watch(self, readiness: Readiness) -> None:
        assert self.bus is not None, "start() first"
        readiness.broker(SERVICE, self.bus)
        readiness.reader(SERVICE, lambda: self._reader)
        readiness.command_queue(SERVICE, self.bus, SERVICE)
        if self._mongo is not None:
            readiness.store(SERVICE, self._mongo)

    def _start_webhooks(self) -> None:
        assert self.bus is not None
        if not self.settings.mongo_url:
            log.warning(
                "webhooks_disabled",
                reason="no MongoDB configured for the delivery log and positions",
            )
            return
        self._mongo = make_client(self.settings.mongo_url)
        db = database(self._mongo, self.settings.mongo_db)
        self.webhooks = WebhookDispatcher(
            self.bus,
            db,
            key_ring(self.settings, "secrets_key").current,
            self._webhook_policy,
            self._targets,
        )

    async def _start_lockout(self) -> Lockout:
        """Shared by every admin instance through MongoDB; without it, this process's own."""
        if self._mongo is None:
            log.warning(
                "login_lockout_per_process",
                reason="no MongoDB configured: run one admin instance only",
            )
            return MemoryLockout()
        db = database(self._mongo, self.settings.mongo_db)
        await with_store_retry(lambda: bind_documents(db, [LoginFailures]))
        return StoredLockout(db)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            if self.snapshotter is not None:  # between two batches, no decision under way
                async with self._lock:
                    self._maybe_snapshot(force=True)
        if self.snapshotter is not None:
            await self.snapshotter.wait()
        if self.webhooks:
            await self.webhooks.stop()
        if self._mongo is not None:
            await self._mongo.close()
        if self.bus:
            await self.bus.close()

    async def _fold(self, batch: list[LoggedEvent]) -> None:
        for logged in batch:
            self.state.apply(logged.envelope, logged.position)
        self._folded += len(batch)
        if self.snapshotter is not None:
            self.snapshotter.folded(len(batch))
        self._sync_webhooks()

    def _maybe_snapshot(self, *, force: bool = False) -> None:
        if self.snapshotter is not None:
            self.snapshotter.maybe_save(self.state, force=force)

    def _sync_webhooks(self) -> None:
        """Sync the workers with the subscriptions, only when a webhook fold changed them:
        computing the subscriptions walks every tenant, and most batches are chat events."""
        if self.webhooks is None or self.state.webhook_version == self._synced_webhook_version:
            return
        self._synced_webhook_version = self.state.webhook_version
        self.webhook_syncs += 1
        self.webhooks.sync(self.state.webhook_subscriptions())

    async def _follow(self) -> None:
        assert self._reader is not None
        async for batch in self._reader.batches():
            async with self._lock:
                await self._fold(batch)
                self._maybe_snapshot()

    async def _publish(self, events: Sequence[Envelope]) -> None:
        assert self.bus is not None, "start() first"
        await self.bus.publish_many(events)

    async def handle_command(self, command: Envelope) -> CommandReply:
        assert self._runtime is not None, "start() first"
        async with self._lock:
            return await self._runtime.handle(command)
