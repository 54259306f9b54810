"""Snapshots of the admin state in MongoDB, with the log position they stand for.

A start loads the latest one and folds only the log after its position (history's archive
and the stream, as a whole fold does), instead of the whole log: administration needs few
of the log's events, but reading and decoding all of them took ~57 s for a log of 670,500.
Store and schedule: relaydesk/snapshots.py; collection ``admin_state_snapshots``
(agent_service/admin/documents.py).

The state as records, all of what a fold of the log up to the position gives: a ``tenant``
record a tenant (its settings, agents, groups, canned responses with their uses, webhook
subscriptions and where each one's worker starts, connectors, pauses, a pending sign-up,
the plan), the ids of the events folded (``seen``, 1,000 a record: a publisher's copy read
after the snapshot is dropped as a whole fold drops it), the recorded command answers
(``reply``: a redelivered command gets its first answer) and how often the webhooks changed
(``state``).
"""

import json
from datetime import date, datetime
from typing import Any

from pydantic_core import to_json
from pymongo.asynchronous.database import AsyncDatabase

from agent_service.admin.documents import AdminSnapshotChunk, AdminSnapshotMeta
from agent_service.admin.state import AdminState, AgentRecord, TenantAdmin
from contracts.plan_limits import TenantPlan
from relaydesk import snapshots
from relaydesk.snapshots import (
    Record,
    ReplyRecords,
    Snapshot,
    id_records,
    reply_of,
)
from relaydesk.store import Row

FORMAT_VERSION = 1  # bump when the records below change shape: an older snapshot is ignored


def to_records(state: AdminState, replies: ReplyRecords | None = None) -> list[Record]:
    """The state as flat records (synchronous: call it while nothing folds)."""
    since: dict[str, list[list[Any]]] = {}
    for (tenant_id, subscription_id), position in state.webhook_since.items():
        since.setdefault(tenant_id, []).append([subscription_id, position])
    # One JSON text a tenant: a copy (written in the background while the state goes on
    # folding), values as the log carries them (a decision folds tuples and datetimes, a
    # fold of the log lists and strings), and no key rules to meet (settings, ids as keys).
    records = [
        {
            "k": "tenant",
            "t": tenant.tenant_id,
            "d": {"tenant": to_json(tenant).decode(), "since": since.get(tenant.tenant_id, [])},
        }
        for tenant in state.tenants.values()
    ]
    records += id_records("seen", list(state.seen))
    records += (replies or ReplyRecords()).of(list(state.replies.items()))
    records.append({"k": "state", "t": "", "d": {"webhook_version": state.webhook_version}})
    return records


def _tenant(data: dict[str, Any]) -> TenantAdmin:
    agents = {
        agent_id: AgentRecord(**{**agent, "groups": tuple(agent["groups"])})
        for agent_id, agent in data.pop("agents").items()
    }
    plan = data.pop("plan")
    subscriptions = [(date.fromisoformat(day), plan_id) for day, plan_id in plan["subscriptions"]]
    pending = data["pending"]
    if pending is not None and pending.get("signed_up_at"):  # the event's time, not its data
        pending["signed_up_at"] = datetime.fromisoformat(pending["signed_up_at"])
    return TenantAdmin(
        **data, agents=agents, plan=TenantPlan(mode=plan["mode"], subscriptions=subscriptions)
    )


def from_records(records: list[Record], position: int) -> AdminState:
    """The state ``records`` (:func:`to_records`) stand for, at log ``position``."""
    state = AdminState()
    state.position = position
    for record in records:
        kind, key, data = record["k"], record["t"], record["d"]
        if kind == "tenant":
            state.tenants[key] = _tenant(json.loads(data["tenant"]))
            for subscription_id, since in data["since"]:
                state.webhook_since[(key, subscription_id)] = since
        elif kind == "seen":
            state.seen.update(data["ids"])
        elif kind == "reply":
            command_id, reply = reply_of(record)
            state.replies[command_id] = reply
        elif kind == "state":
            state.webhook_version = data["webhook_version"]
        else:
            raise ValueError(f"unknown admin record kind {kind!r}")
    return state


class AdminSnapshots(snapshots.SnapshotStore[AdminState]):
    """Saves and loads the admin state (collection ``admin_state_snapshots``)."""

    def __init__(self, db: AsyncDatabase[Row]) -> None:
        super().__init__(
            db,
            AdminSnapshotChunk,
            AdminSnapshotMeta,
            name="admin",
            decode=from_records,
            version=FORMAT_VERSION,
        )


class AdminSnapshotter(snapshots.Snapshotter[AdminState]):
    """Snapshots the admin state when due, between two folded batches and only when every
    decision it folded has been read back from the log (``AdminState.ahead``): the state is
    then exactly the log up to its position."""

    def maybe_save(self, state: AdminState, *, force: bool = False) -> None:
        if state.position < 0:
            return
        self.save_if_due(
            lambda: Snapshot(to_records(state, self.replies), state.position, []),
            settled=state.ahead.settled,
            force=force,
        )
