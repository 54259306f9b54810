"""Snapshots of a service's folded state in MongoDB, with the log position they stand for.

A start then loads the latest snapshot and folds only the log after its position
(routing, agent_service/snapshot.py; billing's ledger, billing_service/snapshot.py;
administration, agent_service/admin/snapshot.py; the connectors, connectors/snapshot.py). The
service turns its state into a flat list of records and back; this module keeps them.

Layout (one collection a service, its two document classes subclassing
:class:`SnapshotChunk` and :class:`SnapshotMeta`): the records split into chunk documents
tagged with a generation, plus one ``_meta`` document naming the current generation, its
position, its chunk count, the recent event ids seen, and the records' format version. A
save writes the new chunks first and switches ``_meta`` last, so a crash mid-save leaves
the previous snapshot intact. A snapshot of another format version, an incomplete one, or
one whose records do not decode is ignored with a warning: the service folds the whole
log instead (never a crash loop on a bad snapshot).
"""

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from beanie import Document
from beanie.operators import NE
from pydantic import Field
from pymongo.asynchronous.database import AsyncDatabase

from contracts.decisions import answered_command
from contracts.envelope import Envelope
from contracts.replies import CommandReply
from relaydesk.store import Row, bind_documents, bound, with_store_retry

log = structlog.get_logger(__name__)

T = TypeVar("T")
D = TypeVar("D", bound=Document)
Record = dict[str, Any]

META_ID = "_meta"
RECORDS_PER_CHUNK = 1000
INTERVAL_SPREAD = 0.5  # a schedule's interval is min_interval_s × 1.0–1.5, drawn per snapshot
FORMAT_VERSION = 1  # what routing has always written: a ``_meta`` without ``version`` is this


class SnapshotChunk(Document):
    """Records ``n*RECORDS_PER_CHUNK…`` of one generation's state (``_id`` = ``gen:n``)."""

    id: str  # type: ignore[assignment]
    gen: str
    records: list[dict[str, Any]]


class SnapshotMeta(Document):
    """The current snapshot: its generation, the log position it stands for, how many
    chunks it has, the event ids seen, and its records' format (``_id`` = :data:`META_ID`)."""

    id: str = META_ID  # type: ignore[assignment]
    gen: str
    position: int
    chunks: int
    seen: list[str] = Field(default_factory=list)
    version: int = FORMAT_VERSION


def snapshot_documents(
    collection: str, prefix: str, module: str
) -> tuple[type[SnapshotChunk], type[SnapshotMeta]]:
    """A service's two snapshot document classes, ``<prefix>SnapshotChunk`` and
    ``<prefix>SnapshotMeta``, of ``collection`` (defined in ``module``)."""

    def document(base: type[D]) -> type[D]:
        name = f"{prefix}{base.__name__}"
        # a nested ``Settings`` as a class statement makes it (pydantic tells it from a field
        # by its module and qualified name)
        settings = type(
            "Settings",
            (),
            {"name": collection, "__module__": module, "__qualname__": f"{name}.Settings"},
        )
        namespace = {"Settings": settings, "__module__": module, "__qualname__": name}
        namespace["__doc__"] = base.__doc__
        return type(name, (base,), namespace)

    return document(SnapshotChunk), document(SnapshotMeta)


@dataclass
class Snapshot:
    """A state taken as records (synchronously), to be written in the background."""

    records: list[Record]
    position: int
    seen: list[str]


class SnapshotStore(Generic[T]):
    """Saves a state's records and loads them back as a state; a failed save only costs a
    longer next start.

    Args:
        db: the database.
        chunk, meta: the service's document classes (both of one collection).
        name: the service's name in log events (``<name>_snapshot_saved``, …).
        decode: the state from its records and position (raises on records it cannot read).
        version: the records' format; a snapshot of another one is ignored.
    """

    def __init__(
        self,
        db: AsyncDatabase[Row],
        chunk: type[SnapshotChunk],
        meta: type[SnapshotMeta],
        *,
        name: str,
        decode: Callable[[list[Record], int], T],
        version: int = FORMAT_VERSION,
    ) -> None:
        self._db = db
        self._chunk, self._meta = chunk, meta
        self.name = name
        self._decode = decode
        self._version = version

    async def bind(self) -> None:
        """Bind the snapshot documents to the database (at the service's start)."""
        await with_store_retry(lambda: bind_documents(self._db, (self._chunk, self._meta)))

    async def save(self, records: list[Record], position: int, seen_ids: list[str]) -> None:
        generation = await self.write_chunks(records)
        await self.switch(generation, position, records, seen_ids)

    async def write_chunks(self, records: list[Record]) -> str:
        """Write ``records`` as a new generation's chunks (not current yet); its name."""
        chunk = await bound(self._db, self._chunk)
        generation = uuid.uuid4().hex
        # Plain documents through PyMongo (BSON written in C), not beanie documents: those
        # validate and encode every record's every value in Python, on the service's loop —
        # hundreds of milliseconds for a state of 10,000 conversations. Same stored shape:
        # ``_id``, ``gen``, ``records`` (what ``load`` reads back as a SnapshotChunk).
        chunks = [
            {
                "_id": f"{generation}:{n}",
                "gen": generation,
                "records": records[i : i + RECORDS_PER_CHUNK],
            }
            for n, i in enumerate(range(0, len(records), RECORDS_PER_CHUNK))
        ]
        if chunks:
            await with_store_retry(lambda: chunk.get_pymongo_collection().insert_many(chunks))
        return generation

    async def switch(
        self, generation: str, position: int, records: list[Record], seen_ids: list[str]
    ) -> None:
        """Make ``generation`` the current snapshot, then remove every other one's chunks."""
        chunk, meta = await bound(self._db, self._chunk), await bound(self._db, self._meta)
        chunks = -(-len(records) // RECORDS_PER_CHUNK)
        current = meta(
            gen=generation, position=position, chunks=chunks, seen=seen_ids, version=self._version
        )
        await with_store_retry(current.save)
        await with_store_retry(
            lambda: chunk.find(NE(chunk.id, META_ID), NE(chunk.gen, generation)).delete()
        )
        log.info(f"{self.name}_snapshot_saved", position=position, records=len(records))

    async def load(self) -> tuple[T, list[str]] | None:
        """The latest snapshot's state and seen ids; None without a usable one."""
        chunk, meta = await bound(self._db, self._chunk), await bound(self._db, self._meta)
        try:
            current = await with_store_retry(lambda: meta.get(META_ID))
        except ValueError as exc:  # pydantic's ValidationError: a _meta of another layout
            self._ignored("unreadable", error=type(exc).__name__)
            return None
        if current is None:
            return None
        if current.version != self._version:
            self._ignored("version", found=current.version, expected=self._version)
            return None
        chunks = await with_store_retry(
            lambda: chunk.find(chunk.gen == current.gen, NE(chunk.id, META_ID)).to_list()
        )
        if len(chunks) != current.chunks:
            log.warning(
                f"{self.name}_snapshot_incomplete", expected=current.chunks, found=len(chunks)
            )
            return None
        chunks.sort(key=lambda c: int(c.id.rsplit(":", 1)[1]))
        records = [record for c in chunks for record in c.records]
        try:
            state = self._decode(records, current.position)
        except Exception as exc:  # noqa: BLE001 - any record it cannot read: fold the log instead
            self._ignored("unreadable", error=type(exc).__name__)
            return None
        return state, list(current.seen)

    def _ignored(self, reason: str, **details: Any) -> None:
        """A snapshot that cannot be used: said, and the whole log is folded instead."""
        log.warning(f"{self.name}_snapshot_ignored", reason=reason, **details)


class ReplyRecords:
    """The recorded command outcomes as records, each dumped once.

    A snapshot holds thousands of outcomes and is taken synchronously; dumping all 20,000
    of routing's again every time stalled its loop ~70 ms per snapshot. An outcome never
    changes once decided, so its record is kept (by the reply object it was made from, in
    case one is ever replaced) for as long as the outcome is among those snapshotted.
    """

    def __init__(self) -> None:
        self._made: dict[str, tuple[CommandReply, Record]] = {}

    def of(self, recent: list[tuple[str, CommandReply]]) -> list[Record]:
        made, records = {}, []
        for command_id, reply in recent:
            known = self._made.get(command_id)
            if known is None or known[0] is not reply:
                known = (reply, {"k": "reply", "t": command_id, "d": reply.model_dump(mode="json")})
            made[command_id] = known
            records.append(known[1])
        self._made = made
        return records


IDS_PER_RECORD = 1000


def id_records(kind: str, ids: list[Any]) -> list[Record]:
    """``ids`` (event ids, id pairs) as ``kind`` records of 1,000 each: one record a list
    would make a document too large for a long log."""
    return [
        {"k": kind, "t": "", "d": {"ids": ids[i : i + IDS_PER_RECORD]}}
        for i in range(0, len(ids), IDS_PER_RECORD)
    ]


def reply_of(record: Record) -> tuple[str, CommandReply]:
    """The command id and outcome a ``reply`` record (:class:`ReplyRecords`) holds."""
    return record["t"], CommandReply.model_validate(record["d"])


class AheadOfLog:
    """A service's own decided events folded before the log handed them back.

    Administration and the connectors fold their decisions once published, ahead of their
    log reader: until the reader reads them back, the state is not the log up to its
    position, and a snapshot then would hold an event before the events the log puts ahead
    of it. A snapshot is taken only when none is ahead (``settled``).
    """

    def __init__(self, service: str) -> None:
        self._service = service
        self._ids: set[str] = set()

    def decided(self, event: Envelope, replies: Mapping[str, CommandReply]) -> None:
        """``event`` was folded from a decision (call it before recording its answer)."""
        command_id = answered_command(event, self._service)
        reply = replies.get(command_id) if command_id is not None else None
        # Already among its command's answer: the reader handed it back first (it races
        # the publish's confirm).
        if reply is None or event.id not in reply.event_ids:
            self._ids.add(event.id)

    def logged(self, event_id: str) -> bool:
        """The log handed ``event_id`` back; True when it was ahead."""
        if event_id not in self._ids:
            return False
        self._ids.discard(event_id)
        return True

    @property
    def settled(self) -> bool:
        return not self._ids


class SnapshotSchedule:
    """When a snapshot is due: ``every`` folded events, and no sooner than ``min_interval_s``
    after the last one (up to half of it more, drawn after each snapshot by ``spread``).

    The interval is why: a snapshot writes the whole state (thousands of records and the
    recent command ids) however little changed, and at 1,000 events a second "every 1,000
    events" was a snapshot a second, a twentieth of the embedded store's time
    (docs/performance.md). A start folds at most the events of one interval more.

    The spread is why four services started together (routing, administration, billing,
    the connectors) do not write their snapshots in the same 0.2 s every 10 s under load,
    which began some of the latency episodes of a busy minute (docs/performance.md, "A
    minute at 1,500 msg/s").
    """

    def __init__(
        self,
        every: int,
        min_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        spread: Callable[[], float] = random.random,
    ) -> None:
        self._every = every
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._spread = spread
        self._interval_s = min_interval_s
        self._folded = 0
        self._last_at: float | None = None

    def folded(self, count: int) -> None:
        self._folded += count

    def due(self, *, force: bool = False) -> bool:
        if force:
            return True
        recent = self._last_at is not None and self._clock() - self._last_at < self._interval_s
        return self._folded >= self._every and not recent

    def taken(self) -> None:
        self._folded = 0
        self._last_at = self._clock()
        self._interval_s = self._min_interval_s * (1 + INTERVAL_SPREAD * self._spread())


class Snapshotter(Generic[T]):
    """Takes a snapshot when its :class:`SnapshotSchedule` says so, at a moment the caller
    says the state is exactly the log up to its position (``settled``), and writes it in
    the background: one write at a time, a failed one logged and retried at the next due
    time (the log has everything: a failure costs only a longer next start)."""

    def __init__(self, store: SnapshotStore[T], schedule: SnapshotSchedule) -> None:
        self.store = store
        self._schedule = schedule
        self._saving: asyncio.Task[None] | None = None
        # Every service's state carries its recorded command outcomes: each dumped once.
        self.replies = ReplyRecords()

    def folded(self, count: int) -> None:
        self._schedule.folded(count)

    def save_if_due(
        self, take: Callable[[], Snapshot], *, settled: bool = True, force: bool = False
    ) -> asyncio.Task[None] | None:
        """``take`` is called only when a snapshot is due (it copies the whole state)."""
        busy = self._saving is not None and not self._saving.done()
        if busy or not settled or not self._schedule.due(force=force):
            return None
        snapshot = take()  # taken now, written in the background
        self._schedule.taken()
        self._saving = asyncio.create_task(self._save(snapshot))
        return self._saving

    async def _save(self, snapshot: Snapshot) -> None:
        try:
            await self.store.save(snapshot.records, snapshot.position, snapshot.seen)
        except Exception as exc:  # noqa: BLE001 - an optimisation failed: the log has everything
            log.warning(
                f"{self.store.name}_snapshot_failed",
                position=snapshot.position,
                error=type(exc).__name__,
            )

    async def wait(self) -> None:
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)
