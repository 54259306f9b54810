"""Snapshots of the routing state in MongoDB, with the log position they stand for.

A start then folds only the log after that position, and the state outlives the log
stream's retention (30 days): agents, groups and settings created long ago stay known.

Layout (collection ``agent_routing_snapshots``, models in agent_service/documents.py): the
state as a flat list of records (tenant, agent, group, conversation, recent command outcome)
split into chunk documents tagged with a generation, plus one ``_meta`` document naming the
current generation and its position. A save writes the new chunks first and switches
``_meta`` last, so a crash mid-save leaves the previous snapshot intact.
"""

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import fields
from typing import Any, get_origin

import structlog
from beanie.operators import NE
from pymongo.asynchronous.database import AsyncDatabase

from agent_service.documents import (
    META_ID,
    ROUTING_DOCUMENTS,
    SNAPSHOTS,
    RoutingSnapshotChunk,
    RoutingSnapshotMeta,
)
from agent_service.state import CLOSED, Agent, Conversation, Group, RoutingState
from contracts.replies import CommandReply
from contracts.settings import accepted_changes
from relaydesk.store import bind_documents, bound, with_store_retry

log = structlog.get_logger(__name__)

COLLECTION = SNAPSHOTS
RECORDS_PER_CHUNK = 1000
KEEP_REPLIES = 20_000  # redeliveries come within minutes; older outcomes are not needed
SET_FIELDS = frozenset({"active", "offers", "offered_to", "declined_by", "expired_for"})
TUPLE_FIELDS = frozenset({"groups", "departments", "channels"})


def _copier(cls: type) -> Callable[[Any], dict[str, Any]]:
    """A function that copies one ``cls`` object's fields into a record's data.

    Not ``dataclasses.asdict``: that deep-copies every value through a recursive walk,
    ~60 µs per conversation, and a snapshot is taken synchronously so that it is exactly
    the log up to its position: 10,000 conversations stalled routing's loop for ~0.6 s.
    The fields are flat (strings, numbers, datetimes, which are immutable) except sets and
    tuples, written as lists, and ``dict[str, int]`` ones, copied: the records are written
    in the background while the state goes on changing.
    """
    names = [f.name for f in fields(cls)]
    dicts = [f.name for f in fields(cls) if get_origin(f.type) is dict or f.type is dict]
    sets, tuples = SET_FIELDS.intersection(names), TUPLE_FIELDS.intersection(names)
    plain = [name for name in names if name not in {*sets, *tuples, *dicts}]

    def copy(obj: Any) -> dict[str, Any]:
        data = {name: getattr(obj, name) for name in plain}
        for name in sets:
            data[name] = sorted(getattr(obj, name))
        for name in tuples:
            data[name] = list(getattr(obj, name))
        for name in dicts:
            data[name] = dict(getattr(obj, name))
        return data

    return copy


_COPIERS = {cls: _copier(cls) for cls in (Agent, Conversation, Group)}


def _record(kind: str, tenant_id: str, obj: Any) -> dict[str, Any]:
    return {"k": kind, "t": tenant_id, "d": _COPIERS[type(obj)](obj)}


def _restore(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in data.items() if k in known}
    for name in SET_FIELDS & values.keys():
        values[name] = set(values[name])
    for name in TUPLE_FIELDS & values.keys():
        values[name] = tuple(values[name])
    return cls(**values)


class ReplyRecords:
    """The recent command outcomes as records, each dumped once.

    A snapshot holds up to ``KEEP_REPLIES`` outcomes and is taken synchronously; dumping all
    20,000 again every time stalled routing's loop ~70 ms per snapshot. An outcome never
    changes once decided, so its record is kept (by the reply object it was made from, in
    case one is ever replaced) for as long as the outcome is among the recent ones.
    """

    def __init__(self) -> None:
        self._made: dict[str, tuple[CommandReply, dict[str, Any]]] = {}

    def of(self, recent: list[tuple[str, CommandReply]]) -> list[dict[str, Any]]:
        made, records = {}, []
        for command_id, reply in recent:
            known = self._made.get(command_id)
            if known is None or known[0] is not reply:
                known = (reply, {"k": "reply", "t": command_id, "d": reply.model_dump(mode="json")})
            made[command_id] = known
            records.append(known[1])
        self._made = made
        return records


def to_records(state: RoutingState, replies: ReplyRecords | None = None) -> list[dict[str, Any]]:
    """The state as flat records (synchronous: call it while nothing else changes state)."""
    records: list[dict[str, Any]] = []
    for tenant in state.tenants.values():
        header = {
            "settings": tenant.settings,
            "next_seq": tenant.next_seq,
            "last_single_offer": tenant.last_single_offer,
            "mode": tenant.mode,
            "plan": tenant.plan,
            "requests_by_period": tenant.requests_by_period,
        }
        records.append({"k": "tenant", "t": tenant.tenant_id, "d": header})
        records += [_record("agent", tenant.tenant_id, a) for a in tenant.agents.values()]
        records += [_record("group", tenant.tenant_id, g) for g in tenant.groups.values()]
        records += [_record("conv", tenant.tenant_id, c) for c in tenant.conversations.values()]
    recent = list(state.replies.items())[-KEEP_REPLIES:]
    records += (replies or ReplyRecords()).of(recent)
    return records


def from_records(records: list[dict[str, Any]], position: int) -> RoutingState:
    state = RoutingState(position=position)
    for record in records:
        kind, key, data = record["k"], record["t"], record["d"]
        if kind == "reply":
            state.replies[key] = CommandReply.model_validate(data)
            continue
        tenant = state.tenant(key)
        if kind == "tenant":
            tenant.settings.update(accepted_changes(data["settings"]))
            tenant.next_seq, tenant.last_single_offer = data["next_seq"], data["last_single_offer"]
            tenant.mode, tenant.plan = data.get("mode", "tool"), data.get("plan")
            tenant.requests_by_period = dict(data.get("requests_by_period") or {})
        elif kind == "agent":
            tenant.agents[data["agent_id"]] = _restore(Agent, data)
        elif kind == "group":
            tenant.groups[data["group_id"]] = _restore(Group, data)
        elif kind == "conv":
            conversation = tenant.conversations[data["conversation_id"]] = _restore(
                Conversation, data
            )
            if conversation.status != CLOSED:
                tenant.open_ids.add(conversation.conversation_id)
            latest = tenant.conversations.get(
                tenant.latest_by_visitor.get(conversation.visitor_id, "")
            )
            if latest is None or latest.seq < conversation.seq:
                tenant.latest_by_visitor[conversation.visitor_id] = conversation.conversation_id
    return state


class SnapshotStore:
    """Saves and loads the routing state; a failed save only costs a longer next start."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db

    async def bind(self) -> None:
        """Bind the snapshot documents to the database (at the service's start)."""
        await with_store_retry(lambda: bind_documents(self._db, ROUTING_DOCUMENTS))

    async def save(self, records: list[dict[str, Any]], position: int, seen_ids: list[str]) -> None:
        chunk, meta = (
            await bound(self._db, RoutingSnapshotChunk),
            await bound(self._db, RoutingSnapshotMeta),
        )
        generation = uuid.uuid4().hex
        # Plain documents through PyMongo (BSON written in C), not beanie documents: those
        # validate and encode every record's every value in Python, on routing's loop —
        # hundreds of milliseconds for a state of 10,000 conversations. Same stored shape:
        # ``_id``, ``gen``, ``records`` (what ``load`` reads back as RoutingSnapshotChunk).
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
        current = meta(gen=generation, position=position, chunks=len(chunks), seen=seen_ids)
        await with_store_retry(current.save)
        await with_store_retry(
            lambda: chunk.find(NE(chunk.id, META_ID), NE(chunk.gen, generation)).delete()
        )
        log.info("routing_snapshot_saved", position=position, records=len(records))

    async def load(self) -> tuple[RoutingState, list[str]] | None:
        chunk, meta = (
            await bound(self._db, RoutingSnapshotChunk),
            await bound(self._db, RoutingSnapshotMeta),
        )
        current = await with_store_retry(lambda: meta.get(META_ID))
        if current is None:
            return None
        chunks = await with_store_retry(
            lambda: chunk.find(chunk.gen == current.gen, NE(chunk.id, META_ID)).to_list()
        )
        if len(chunks) != current.chunks:
            log.warning("routing_snapshot_incomplete", expected=current.chunks, found=len(chunks))
            return None
        chunks.sort(key=lambda c: int(c.id.rsplit(":", 1)[1]))
        records = [record for c in chunks for record in c.records]
        return from_records(records, current.position), list(current.seen)


class SnapshotSchedule:
    """When a snapshot is due: ``every`` folded events, and no sooner than ``min_interval_s``
    after the last one.

    The interval is why: a snapshot writes the whole state (thousands of records and the
    recent command ids) however little changed, and at 1,000 events a second "every 1,000
    events" was a snapshot a second, a twentieth of the embedded store's time
    (docs/performance.md). A start folds at most the events of one interval more.
    """

    def __init__(
        self, every: int, min_interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every = every
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._folded = 0
        self._last_at: float | None = None

    def folded(self, count: int) -> None:
        self._folded += count

    def due(self, *, force: bool = False) -> bool:
        if force:
            return True
        recent = self._last_at is not None and self._clock() - self._last_at < self._min_interval_s
        return self._folded >= self._every and not recent

    def taken(self) -> None:
        self._folded = 0
        self._last_at = self._clock()


class Snapshotter:
    """When to snapshot (its :class:`SnapshotSchedule`), at a moment when the state is
    exactly the log up to its position (none of our own decisions still on their way back)."""

    def __init__(self, store: SnapshotStore, schedule: SnapshotSchedule) -> None:
        self.store = store
        self._schedule = schedule
        self._saving: asyncio.Task[None] | None = None
        self._replies = ReplyRecords()

    def folded(self, count: int) -> None:
        self._schedule.folded(count)

    def maybe_save(
        self,
        state: RoutingState,
        seen_ids: Callable[[], list[str]],
        *,
        settled: bool,
        force: bool = False,
    ) -> asyncio.Task[None] | None:
        """``seen_ids`` is called only when a snapshot is due (it copies thousands of ids)."""
        busy = self._saving is not None and not self._saving.done()
        if busy or not settled or state.position is None or not self._schedule.due(force=force):
            return None
        records, position = (
            to_records(state, self._replies),
            state.position,
        )  # taken now, written in the background
        self._schedule.taken()
        self._saving = asyncio.create_task(self._save(records, position, seen_ids()))
        return self._saving

    async def _save(
        self, records: list[dict[str, Any]], position: int, seen_ids: list[str]
    ) -> None:
        try:
            await self.store.save(records, position, seen_ids)
        except Exception as exc:  # noqa: BLE001 - an optimisation failed: the log has everything
            log.warning("routing_snapshot_failed", error=type(exc).__name__)

    async def wait(self) -> None:
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)
