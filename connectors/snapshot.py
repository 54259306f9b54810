"""Snapshots of the connectors' fold of the log in MongoDB, with the position they stand for.

A start loads the latest one and folds only the log after its position (history's archive
and the stream, as a whole fold does), instead of the whole log: ~80 s for a log of 670,500
entries. Store and schedule: relaydesk/snapshots.py; collection
``connectors_state_snapshots`` (connectors/documents.py).

Only what is folded in memory is here; the platform conversations' mappings, the outbox (a
reply queued by message id, marked done once sent) and the follower's handled position are
in MongoDB already and are written before the log moves past them. The records, all of
what a fold of the log up to the position gives: a ``connector`` record a configured
connector (its configuration as logged: secrets sealed, opened again at the start), the
pauses in force, a ``plan`` record a tenant and the plan events' ids seen (a publisher's
copy is not applied twice), the log's sealed secrets of each connector (what tells new
credentials from the same ones), the platform conversations' ids, and the recorded command
answers (``reply``).
"""

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from connectors.config import ConnectorDirectory
from connectors.documents import ConnectorsSnapshotChunk, ConnectorsSnapshotMeta
from connectors.follower import LogFollower
from connectors.plans import TenantPlans
from relaydesk import snapshots
from relaydesk.sealing import SecretBox
from relaydesk.snapshots import (
    Record,
    ReplyRecords,
    Snapshot,
    id_records,
    reply_of,
)
from relaydesk.store import Row

FORMAT_VERSION = 1  # bump when the records below change shape: an older snapshot is ignored


@dataclass
class ConnectorsFold:
    """A restored fold: the directory (with the answers), the plans, the follower's part."""

    directory: ConnectorDirectory
    plans: TenantPlans
    follower: dict[str, Any]
    position: int


def to_records(
    directory: ConnectorDirectory,
    plans: TenantPlans,
    follower: LogFollower,
    replies: ReplyRecords | None = None,
) -> list[Record]:
    """The fold as flat records (synchronous: call it between two folded batches)."""
    connectors, plan_state, followed = directory.state(), plans.state(), follower.state()
    records: list[Record] = [
        {"k": "connector", "t": tenant, "d": data} for tenant, data in connectors["configured"]
    ]
    records.append({"k": "pauses", "t": "", "d": {"pauses": connectors["pauses"]}})
    records += [
        {"k": "plan", "t": tenant, "d": {"mode": mode, "subscriptions": subscriptions}}
        for tenant, mode, subscriptions in plan_state["plans"]
    ]
    records += id_records("plan_seen", plan_state["seen"])
    records += id_records("sealed", followed["sealed"])
    records += id_records("conversations", followed["conversations"])
    records += (replies or ReplyRecords()).of(list(directory.replies.items()))
    return records


def from_records(records: list[Record], position: int, box: SecretBox) -> ConnectorsFold:
    """The fold ``records`` (:func:`to_records`) stand for, at log ``position``."""
    directory, plans = ConnectorDirectory(box), TenantPlans()
    connectors: dict[str, list[Any]] = {"configured": [], "pauses": []}
    plan_state: dict[str, list[Any]] = {"plans": [], "seen": []}
    followed: dict[str, list[Any]] = {"sealed": [], "conversations": []}
    for record in records:
        kind, key, data = record["k"], record["t"], record["d"]
        if kind == "connector":
            connectors["configured"].append([key, data])
        elif kind == "pauses":
            connectors["pauses"] += data["pauses"]
        elif kind == "plan":
            plan_state["plans"].append([key, data["mode"], data["subscriptions"]])
        elif kind == "plan_seen":
            plan_state["seen"] += data["ids"]
        elif kind in followed:
            followed[kind] += data["ids"]
        elif kind == "reply":
            command_id, reply = reply_of(record)
            directory.replies[command_id] = reply
        else:
            raise ValueError(f"unknown connectors record kind {kind!r}")
    directory.restore(connectors, position)
    plans.restore(plan_state)
    return ConnectorsFold(directory, plans, followed, position)


class ConnectorSnapshots(snapshots.SnapshotStore[ConnectorsFold]):
    """Saves and loads the fold (collection ``connectors_state_snapshots``)."""

    def __init__(self, db: AsyncDatabase[Row], box: SecretBox) -> None:
        super().__init__(
            db,
            ConnectorsSnapshotChunk,
            ConnectorsSnapshotMeta,
            name="connectors",
            decode=lambda records, position: from_records(records, position, box),
            version=FORMAT_VERSION,
        )


class ConnectorSnapshotter(snapshots.Snapshotter[ConnectorsFold]):
    """Snapshots the fold when due: after a batch is folded and its effects are done (the
    outbox holds its replies), and only when every decision folded ahead of the log has
    been read back (``ConnectorDirectory.ahead``)."""

    def maybe_save(
        self,
        directory: ConnectorDirectory,
        plans: TenantPlans,
        follower: LogFollower,
        *,
        force: bool = False,
    ) -> None:
        position = follower.folded_to
        if position < 0:
            return
        self.save_if_due(
            lambda: Snapshot(to_records(directory, plans, follower, self.replies), position, []),
            settled=directory.ahead.settled,
            force=force,
        )
