"""Snapshots of the routing state in MongoDB, with the log position they stand for.

A start then folds only the log after that position, and the state outlives the log
stream's retention (30 days): agents, groups and settings created long ago stay known.

Layout (collection ``agent_routing_snapshots``, models in agent_service/documents.py; the
chunked, generation-switched store is relaydesk/snapshots.py): the state as a flat list of
records (tenant, agent, group, conversation, recent command outcome) split into chunk
documents tagged with a generation, plus one ``_meta`` document naming the current
generation and its position. A save writes the new chunks first and switches ``_meta``
last, so a crash mid-save leaves the previous snapshot intact.
"""

import asyncio
from collections.abc import Callable
from dataclasses import fields
from typing import Any, get_origin

from pymongo.asynchronous.database import AsyncDatabase

from agent_service.documents import SNAPSHOTS, RoutingSnapshotChunk, RoutingSnapshotMeta
from agent_service.state import CLOSED, Agent, Conversation, Group, RoutingState
from contracts.settings import accepted_changes
from relaydesk import snapshots
from relaydesk.snapshots import ReplyRecords, Snapshot, SnapshotSchedule, reply_of
from relaydesk.store import Row

__all__ = ["ReplyRecords", "SnapshotSchedule", "SnapshotStore", "Snapshotter"]

COLLECTION = SNAPSHOTS
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
            command_id, reply = reply_of(record)
            state.replies[command_id] = reply
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


class SnapshotStore(snapshots.SnapshotStore[RoutingState]):
    """Saves and loads the routing state; a failed save only costs a longer next start."""

    def __init__(self, db: AsyncDatabase[Row]) -> None:
        super().__init__(
            db, RoutingSnapshotChunk, RoutingSnapshotMeta, name="routing", decode=from_records
        )


class Snapshotter(snapshots.Snapshotter[RoutingState]):
    """When to snapshot (its :class:`SnapshotSchedule`), at a moment when the state is
    exactly the log up to its position (none of our own decisions still on their way back)."""

    def maybe_save(
        self,
        state: RoutingState,
        seen_ids: Callable[[], list[str]],
        *,
        settled: bool,
        force: bool = False,
    ) -> asyncio.Task[None] | None:
        """``seen_ids`` is called only when a snapshot is due (it copies thousands of ids)."""
        position = state.position
        if position is None:
            return None
        return self.save_if_due(
            lambda: Snapshot(to_records(state, self.replies), position, seen_ids()),
            settled=settled,
            force=force,
        )
