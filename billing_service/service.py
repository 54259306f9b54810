"""BillingService: folds the log into the ledger, closes periods, issues invoices, answers.

The ledger lives in memory and is folded from the log (the log is the record; nothing
else is needed to bill). With MongoDB, a snapshot of it is kept (billing_service/snapshot.py)
and a start folds only the log after the snapshot's position; without one (or with one
it cannot use) it folds the whole log. Invoices are computed by the fold when a
``billing.period_closed`` event is applied and published with an id derived from tenant and
period, so issuing twice (a crash between compute and publish) is one invoice. Commands
are decided by the decider runtime (relaydesk/decider.py) with billing's decider
(``decider.py``).
"""

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel
from pymongo import AsyncMongoClient

from billing_service.decider import BILLING_ACTOR, SERVICE, BillingDecider, period_close_id
from billing_service.ledger import Ledger
from billing_service.payments import ManualProvider, PaymentProvider
from billing_service.queries import BillingQueries
from billing_service.snapshot import LedgerSnapshots, LedgerSnapshotter
from contracts import Envelope
from contracts.envelope import LoggedEvent
from contracts.events.billing import InvoiceIssued, PeriodClosed
from contracts.plans import PlanCatalogue
from contracts.replies import CommandReply
from relaydesk.archived import ArchivedLog
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import catch_up
from relaydesk.bus.log_reader import Start
from relaydesk.bus.rpc import serve_commands, serve_queries
from relaydesk.decider import DeciderRuntime
from relaydesk.health import Readiness
from relaydesk.queries import QueryAnswers
from relaydesk.settings import Settings
from relaydesk.snapshots import SnapshotSchedule
from relaydesk.store import database, make_client

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]

SNAPSHOT_EVERY = 1000  # events folded between snapshots (as routing's)
SNAPSHOT_MIN_INTERVAL_S = 10.0  # and no sooner than this after the last one


def _previous_periods(since: date, today: date) -> list[str]:
    """Every month from ``since``'s up to (not including) today's."""
    periods, year, month = [], since.year, since.month
    while (year, month) < (today.year, today.month):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return periods


class BillingService:
    """Args:
    clock: now (UTC), for period closes, due dates and plan changes.
    close_check_s: how often ended months are looked for.
    payments: the payment providers, by their ``method`` (default: the manual one only).
    snapshot_every, snapshot_min_interval_s: when a snapshot of the ledger is due (with
        ``mongo_url`` set; relaydesk/snapshots.py SnapshotSchedule).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        close_check_s: float = 60.0,
        payments: Sequence[PaymentProvider] = (ManualProvider(),),
        snapshot_every: int = SNAPSHOT_EVERY,
        snapshot_min_interval_s: float = SNAPSHOT_MIN_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self.catalogue = PlanCatalogue.load(settings.plans_file)
        self._clock = clock
        self._payments = {provider.method: provider for provider in payments}
        self._use(Ledger(self.catalogue))
        self._schedule = SnapshotSchedule(snapshot_every, snapshot_min_interval_s)
        self.snapshotter: LedgerSnapshotter | None = None
        self.restored_from: int | None = None  # the snapshot position of the last start
        self.folded_at_start = 0  # log entries the last start folded (after the snapshot)
        self._close_check_s = close_check_s
        self.bus: Bus | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._channels: list[AbstractChannel] = []
        self._issuing = asyncio.Lock()
        self._reader: LogReader | None = None
        self._mongo: AsyncMongoClient | None = None
        self._folded = 0  # log entries folded since the start

    def _use(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.decider = BillingDecider(ledger, self._payments, clock=self._clock)
        self._runtime = DeciderRuntime(self.decider, self._publish_decision)

    def _archive(self) -> ArchivedLog | None:
        """Usage and bills older than the stream's retention are read from history's
        archive (relaydesk/archived.py); without MongoDB, the stream's 30 days only."""
        if self._mongo is None:
            log.warning("billing_without_archive", reason="no MongoDB: the stream's 30 days only")
            return None
        return ArchivedLog(database(self._mongo, self.settings.mongo_db))

    async def _restore(self) -> Start:
        """The ledger of the latest snapshot (if any), and where the log is read from."""
        if not self.settings.mongo_url:
            return "first"
        self._mongo = make_client(self.settings.mongo_url)
        store = LedgerSnapshots(database(self._mongo, self.settings.mongo_db), self.catalogue)
        await store.bind()
        self.snapshotter = LedgerSnapshotter(store, self._schedule)
        restored = await store.load()
        if restored is None:
            return "first"
        self._use(restored[0])
        self.restored_from = self.ledger.position
        return self.ledger.position + 1

    async def start(self) -> None:
        self.bus = await Bus.from_settings(self.settings, service=SERVICE).connect()
        self._use(Ledger(self.catalogue))
        self.restored_from, self.folded_at_start, self._folded = None, 0, 0
        start = await self._restore()
        self._reader = reader = await LogReader(
            self.bus, start=start, name=SERVICE, gulp_s=self.settings.reader_gulp_s
        ).open()
        position = await catch_up(
            self.bus, reader, self._apply, service=SERVICE, archive=self._archive()
        )
        self.folded_at_start = self._folded
        log.info(
            "billing_ledger_restored",
            snapshot_position=self.restored_from,
            folded=self.folded_at_start,
        )
        self._maybe_snapshot()
        await self._issue_pending()
        self._tasks = [
            asyncio.create_task(self._follow(reader)),
            asyncio.create_task(self._close_periods_forever()),
        ]
        self._channels = [
            await serve_commands(self.bus, SERVICE, self.handle_command),
            await serve_queries(
                self.bus,
                SERVICE,
                QueryAnswers(
                    SERVICE, BillingQueries(self.ledger, self.catalogue, self._clock)
                ).handle,
            ),
        ]
        log.info("billing_service_started", position=position, tenants=len(self.ledger.tenants))

    def watch(self, readiness: Readiness) -> None:
        """Ready: the broker, the ledger keeping up with the log, the command queue
        consumed. Not the store: the log is billing's record, its snapshots an optimisation
        (a failed write is retried later)."""
        assert self.bus is not None, "start() first"
        readiness.broker(SERVICE, self.bus)
        readiness.reader(SERVICE, lambda: self._reader)
        readiness.command_queue(SERVICE, self.bus, SERVICE)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        following = bool(self._tasks)
        self._tasks = []
        if self.snapshotter is not None:
            await self.snapshotter.wait()  # one under way first: the final one is not skipped
            if following:  # between two batches: the ledger is the log up to its position
                self._maybe_snapshot(force=True)
            await self.snapshotter.wait()
        if self.bus:
            await self.bus.close()
        if self._mongo is not None:
            await self._mongo.close()
            self._mongo = None

    async def _apply(self, batch: list[LoggedEvent]) -> None:
        for event in batch:
            self.ledger.apply(event.envelope, event.position)
        self._folded += len(batch)
        if self.snapshotter is not None:
            self.snapshotter.folded(len(batch))

    def _maybe_snapshot(self, *, force: bool = False) -> None:
        if self.snapshotter is not None:
            self.snapshotter.maybe_save(self.ledger, force=force)

    async def _follow(self, reader: LogReader) -> None:
        async for batch in reader.batches():
            await self._apply(batch)
            self._maybe_snapshot()
            if any(e.envelope.type == PeriodClosed.TYPE for e in batch):
                await self._issue_pending()

    async def _publish_decision(self, events: Sequence[Envelope]) -> None:
        assert self.bus is not None, "start() first"
        await self.bus.publish_many(events)

    async def _publish(
        self, tenant: str, type_name: str, data: dict[str, Any], *, event_id: str
    ) -> Envelope:
        """Billing's own events outside commands (invoices, periodic closes): ids derived."""
        assert self.bus is not None
        envelope = Envelope(
            id=event_id,
            type=type_name,
            tenant=tenant,
            stream=f"billing:{tenant}",
            actor=BILLING_ACTOR,
            data=data,
        )
        await self.bus.publish(envelope)
        return envelope

    async def _issue_pending(self) -> None:
        async with self._issuing:
            for tenant, invoice in self.ledger.unissued():
                await self._publish(
                    tenant, InvoiceIssued.TYPE, invoice, event_id=invoice["invoice_id"]
                )
                log.info(
                    "invoice_issued",
                    tenant=tenant,
                    number=invoice["number"],
                    period=invoice["period"],
                    total_cents=invoice["total_cents"],
                )

    async def close_finished_periods(self) -> None:
        """Publish ``billing.period_closed`` for every ended month of every SaaS tenant."""
        today = self._clock().date()
        for state in list(self.ledger.tenants.values()):
            if state.mode != "saas" or state.created is None:
                continue
            for period in _previous_periods(state.created, today):
                if period not in state.closed:
                    await self._publish(
                        state.tenant,
                        PeriodClosed.TYPE,
                        {"period": period},
                        event_id=period_close_id(state.tenant, period),
                    )

    async def _close_periods_forever(self) -> None:
        while True:
            try:
                await self.close_finished_periods()
            except Exception as exc:  # noqa: BLE001 - the next round retries; closing is idempotent
                log.error("period_close_failed", error=type(exc).__name__)
            await asyncio.sleep(self._close_check_s)

    # --- commands (this service is their single writer: see decider.py) ---------------

    async def handle_command(self, command: Envelope) -> CommandReply:
        return await self._runtime.handle(command)
