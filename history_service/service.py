"""HistoryService: archives the log into MongoDB and keeps the read models; answers queries.

Its checkpoint is saved after each batch's archive and read-model writes, and both are
idempotent, so a restart (clean or not) neither loses nor repeats anything.
"""

import asyncio
import functools
import time

import structlog
from aio_pika.abc import AbstractChannel
from pymongo import AsyncMongoClient

from contracts import derive_event_id
from contracts.envelope import Envelope, LoggedEvent
from contracts.events.history import EventsExpired
from contracts.events.system import SYSTEM_TENANT
from history_service.batch_activity import BatchActivity
from history_service.documents import HISTORY_DOCUMENTS
from history_service.queries import HistoryQueries
from history_service.retention import HISTORY_ACTOR
from history_service.writer import CONSUMER, HistoryWriter
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.connection import PublishFailed
from relaydesk.bus.rpc import serve_queries
from relaydesk.health import Readiness
from relaydesk.keys import key_ring
from relaydesk.metrics import HISTORY_BATCH_EVENTS
from relaydesk.queries import QueryAnswers
from relaydesk.settings import Settings
from relaydesk.signing import Signer
from relaydesk.store import (
    Checkpoint,
    bind_documents,
    database,
    make_client,
    with_store_retry,
)
from relaydesk.tracing import TRACEPARENT, span, tracing_enabled

log = structlog.get_logger(__name__)

SERVICE = CONSUMER
RETRY_MIN_S, RETRY_MAX_S = 0.5, 30.0
MAX_BATCH = 1000  # events archived per insert_many and per checkpoint
# While the log is busy (50+ events/s; a quiet log is archived at once, so a console
# reading right after an event finds it) a batch fills for up to this long. The store's
# cost is per round trip and per conversation written, not per event: a batch makes five
# round trips, one journaled checkpoint and one write per conversation it touched, however
# many of that conversation's messages it holds (~0.55 ms of the embedded store's CPU each,
# docs/performance.md). The linger bounds what it adds to a reader's wait (``upto=``).
BATCH_LINGER_S = 0.25
# A batch this large means a busy log (400+ events/s with the linger): conversations that
# only took messages are then held and written at most once a second (ReadModels.HOLD_S);
# a smaller batch writes everything at once, so a quiet system's read models are current.
HOLD_FROM_EVENTS = 100
STOP_FLUSH_S = 5.0


class HistoryService:
    def __init__(self, settings: Settings, *, batch_size: int = MAX_BATCH) -> None:
        if not settings.mongo_url:
            raise ValueError(
                "history_service needs MONGO_URL (relaydesk up starts an embedded server)"
            )
        self.settings = settings
        # No key, no start: an archive without signed checkpoints could be rewritten unseen.
        self._signer = Signer(key_ring(settings, "audit_signing_key"))
        self._batch_size = batch_size
        self.bus: Bus | None = None
        self._mongo: AsyncMongoClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._anchor_task: asyncio.Task[None] | None = None
        self._channel: AbstractChannel | None = None
        self._reader: LogReader | None = None
        self.position: int | None = None
        self.caught_up = asyncio.Condition()
        self._writing = asyncio.Lock()  # a batch and a flush of held conversations: one at a time
        self._flush_task: asyncio.Task[None] | None = None
        self._activity = BatchActivity(time.monotonic)

    async def start(self) -> None:
        self._mongo = make_client(self.settings.mongo_url or "")
        db = database(self._mongo, self.settings.mongo_db)
        self._writer = HistoryWriter(db, self._signer)
        self._anchoring = self._writer.anchoring
        await bind_documents(db, (*HISTORY_DOCUMENTS, Checkpoint))  # creates their indexes
        self.position = await self._writer.checkpoints.load(SERVICE)
        self.bus = await Bus.from_settings(self.settings, service=SERVICE).connect()
        self._reader = reader = await LogReader(
            self.bus,
            start="first" if self.position is None else self.position + 1,
            name=SERVICE,
            gulp_s=self.settings.reader_gulp_s,
        ).open()
        self._task = asyncio.create_task(self._follow(reader))
        self._task.add_done_callback(self._report_end)
        self._anchor_task = asyncio.create_task(self._anchor_at_intervals())
        self._flush_task = asyncio.create_task(self._flush_when_due())
        self._channel = await serve_queries(
            self.bus,
            SERVICE,
            QueryAnswers(SERVICE, HistoryQueries(db, self.wait_for_position)).handle,
        )
        log.info("history_service_started", position=self.position)

    def watch(self, readiness: Readiness) -> None:
        """Ready: the broker, the store, and the archive keeping up with the log. Queries
        are answered by any instance (no single-writer queue to check)."""
        assert self.bus is not None and self._mongo is not None, "start() first"
        readiness.broker(SERVICE, self.bus)
        readiness.store(SERVICE, self._mongo)
        readiness.reader(SERVICE, lambda: self._reader)

    async def stop(self) -> None:
        for task in (self._flush_task, self._anchor_task, self._task):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._write_held()
        if self.bus:
            await self.bus.close()
        if self._mongo:
            await self._mongo.close()

    async def _follow(self, reader: LogReader) -> None:
        async for batch in reader.batches(max_batch=self._batch_size, linger_s=BATCH_LINGER_S):
            for first, last in reader.take_expired():
                # Recorded before the batch after the gap is archived: once the checkpoint
                # is past it, a restart would not see the gap again.
                await self._record_expired(first, last)
            with span(
                "history archive",
                parent=_trace_of(batch),
                kind="consumer",
                attributes={"relaydesk.events": len(batch)},
            ):
                await self._apply_until_done(batch)
            HISTORY_BATCH_EVENTS.observe(len(batch))
            self.position = batch[-1].position
            await self._anchor(everyone=False)  # a conversation closed: sign its end now
            async with self.caught_up:
                self.caught_up.notify_all()

    async def _record_expired(self, first: int, last: int) -> None:
        """Positions the stream deleted before history read them: their events are in no
        archive. Said once to whoever watches the log (error line), and for good in the
        archive itself, where ``relaydesk audit verify`` reports them."""
        # The reader reports from the checkpoint on, and the checkpoint is saved after a
        # batch's archive: a stop between the two leaves that batch archived above it. Batches
        # are archived whole and in order, so everything up to the highest position archived
        # in the range was read; only what follows it is lost.
        archived = await with_store_retry(
            functools.partial(self._writer.archive.last_position_within, first, last)
        )
        if archived is not None:
            first = archived + 1
            if first > last:
                return
        log.error(
            "history_events_expired",
            first_position=first,
            last_position=last,
            count=last - first + 1,
            why="history was behind by more than the log stream's retention",
        )
        assert self.bus is not None
        record = expired_record(first, last)
        delay = RETRY_MIN_S
        while True:
            try:
                await self.bus.publish(record)
                return
            except PublishFailed:
                log.warning("history_expired_record_unpublished", retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _apply_until_done(self, batch: list[LoggedEvent]) -> None:
        # Never skip a batch (that would lose history) and never let the follower die:
        # a long store outage or an unexpected error is retried with backoff, which is
        # safe because applying a batch is idempotent.
        hold = len(batch) >= HOLD_FROM_EVENTS
        delay = RETRY_MIN_S
        while True:
            try:
                async with self._writing:
                    with self._activity.writing():
                        await with_store_retry(
                            functools.partial(self._writer.apply, batch, hold=hold)
                        )
                return
            except Exception as exc:  # noqa: BLE001 - logged and retried, see above
                self._anchoring.resync()
                log.error(
                    "history_batch_failed",
                    first=batch[0].position,
                    last=batch[-1].position,
                    error=type(exc).__name__,
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _write_held(self) -> None:
        """On a clean stop, what the read models hold goes to the store (after a crash the
        checkpoint below it has them read again)."""
        writer = getattr(self, "_writer", None)
        if writer is None or self._mongo is None:
            return
        try:
            await asyncio.wait_for(writer.flush(), STOP_FLUSH_S)
        except Exception as exc:  # noqa: BLE001 - the checkpoint is below it: read again at start
            log.warning("history_flush_failed", error=type(exc).__name__)

    async def _flush_when_due(self) -> None:
        """Held conversations are written once ``HOLD_S`` has passed, or as soon as a tick
        goes by after the last batch was written without another one (the load stopped:
        nothing is gained by holding them, and a console reading counts then finds them
        current; batch_activity.py); a failed flush is tried again at the next tick."""
        models = self._writer.models
        tick = models.HOLD_S / 4
        while True:
            await asyncio.sleep(tick)
            quiet = self._activity.quiet_for(tick)  # judged from the last batch's end
            if not models.holding or not (quiet or models.flush_due()):
                continue
            try:
                async with self._writing:
                    await with_store_retry(self._writer.flush)
            except Exception as exc:  # noqa: BLE001 - still held, written at the next tick
                log.warning("history_flush_failed", error=type(exc).__name__)

    async def _anchor_at_intervals(self) -> None:
        while True:
            await asyncio.sleep(self.settings.audit_checkpoint_interval_s)
            await self._anchor(everyone=True)

    async def _anchor(self, *, everyone: bool) -> None:
        """Publish the checkpoints due; one that fails is made again next time."""
        envelopes = self._anchoring.due(everyone=everyone)
        if not envelopes or self.bus is None:
            return
        try:
            await self.bus.publish_many(envelopes)
        except Exception as exc:  # noqa: BLE001 - the chains stay pending, the next round signs them
            self._anchoring.failed(envelopes)
            log.warning("audit_checkpoint_not_published", error=type(exc).__name__)

    @staticmethod
    def _report_end(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("history_follow_failed", error=repr(task.exception()))

    async def wait_for_position(self, position: int, timeout: float = 10) -> None:
        async with self.caught_up:
            await asyncio.wait_for(
                self.caught_up.wait_for(
                    # "or -1" would read position 0 (the log's first event) as nothing yet
                    lambda: self.position is not None and self.position >= position
                ),
                timeout,
            )


def _trace_of(batch: list[LoggedEvent]) -> dict[str, str] | None:
    """The trace of the batch's latest traced event: archiving continues that action's trace
    (under load a batch holds many actions; a span has one parent). Nothing is looked at
    while tracing is off."""
    if not tracing_enabled():
        return None
    traceparent = next((e.traceparent for e in reversed(batch) if e.traceparent), None)
    return {TRACEPARENT: traceparent} if traceparent else None


def expired_record(first: int, last: int) -> Envelope:
    """The archive's record of positions gone from the log before history read them; the
    same id for the same range, so a restart that finds the gap again records it once."""
    return Envelope(
        id=derive_event_id(SYSTEM_TENANT, "history.expired", f"{first}-{last}"),
        type=EventsExpired.TYPE,
        tenant=SYSTEM_TENANT,
        stream="history:expired",
        actor=HISTORY_ACTOR,
        data={"first_position": first, "last_position": last},
    )
