"""Snapshots of billing's ledger in MongoDB, with the log position they stand for.

A start loads the latest one and folds only the log after its position (history's archive
and the stream, as a whole fold does), instead of the whole log: ~35 µs an entry, hours for
a busy month's log. Store and schedule: relaydesk/snapshots.py; collection
``billing_ledger_snapshots`` (billing_service/documents.py).

The ledger as records, all of what a fold of the log up to the position gives: a ``tenant``
record a tenant (mode, account opening, plan changes, agents, connectors, closed periods,
the invoices computed at each close and the issued ones with what was paid), a ``usage``
record a tenant and month, the dedupe window's event ids (``seen``, 1,000 a record, oldest
first: a publisher's copy folded after the snapshot is dropped as a whole fold drops it),
and the recorded command answers (``reply``: a redelivered command gets its first answer).
"""

from datetime import date
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_service.documents import LedgerSnapshotChunk, LedgerSnapshotMeta
from billing_service.ledger import Ledger, PeriodUsage, TenantBilling
from contracts.plans import PlanCatalogue
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


def _date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _tenant_record(state: TenantBilling) -> Record:
    # Copies: the records are written in the background while the ledger goes on folding
    # (a payment adds to an issued invoice's ``paid_cents``).
    data = {
        "mode": state.mode,
        "created": None if state.created is None else state.created.isoformat(),
        "subscriptions": [[effective.isoformat(), plan] for effective, plan in state.subscriptions],
        "agents": sorted(state.agents),
        "connectors": sorted(state.connectors),
        "closed": list(state.closed),
        # lists of pairs, not documents keyed by period or number: no key rules to meet
        "computed": [[period, dict(invoice)] for period, invoice in state.computed.items()],
        "invoices": [[number, dict(invoice)] for number, invoice in state.invoices.items()],
    }
    return {"k": "tenant", "t": state.tenant, "d": data}


def _usage_record(tenant: str, period: str, usage: PeriodUsage) -> Record:
    data = {
        "period": period,
        "conversations": usage.conversations,
        "messages": usage.messages,
        "connector_messages": usage.connector_messages,
        "active_agents": sorted(usage.active_agents),
    }
    return {"k": "usage", "t": tenant, "d": data}


def to_records(ledger: Ledger, replies: ReplyRecords | None = None) -> list[Record]:
    """The ledger as flat records (synchronous: call it while nothing folds)."""
    records: list[Record] = []
    for state in ledger.tenants.values():
        records.append(_tenant_record(state))
        records += [_usage_record(state.tenant, p, u) for p, u in state.usage.items()]
    records += id_records("seen", ledger.seen_ids())
    records += (replies or ReplyRecords()).of(list(ledger.replies.items()))
    return records


def _restore_tenant(state: TenantBilling, data: dict[str, Any]) -> None:
    state.mode, state.created = data["mode"], _date(data["created"])
    state.subscriptions = [(date.fromisoformat(day), plan) for day, plan in data["subscriptions"]]
    state.agents, state.connectors = set(data["agents"]), set(data["connectors"])
    state.closed = list(data["closed"])
    state.computed = {period: dict(invoice) for period, invoice in data["computed"]}
    state.invoices = {number: dict(invoice) for number, invoice in data["invoices"]}


def from_records(records: list[Record], position: int, catalogue: PlanCatalogue) -> Ledger:
    """The ledger ``records`` (:func:`to_records`) stand for, at log ``position``."""
    seen: list[str] = []
    restored: list[Record] = []
    for record in records:
        if record["k"] == "seen":
            seen += record["d"]["ids"]
        else:
            restored.append(record)
    ledger = Ledger(catalogue, seen=seen)
    ledger.position = position
    for record in restored:
        kind, key, data = record["k"], record["t"], record["d"]
        if kind == "reply":
            command_id, reply = reply_of(record)
            ledger.replies[command_id] = reply
        elif kind == "tenant":
            _restore_tenant(ledger.tenant(key), data)
        elif kind == "usage":
            ledger.tenant(key).usage[data["period"]] = PeriodUsage(
                conversations=data["conversations"],
                messages=data["messages"],
                connector_messages=data["connector_messages"],
                active_agents=set(data["active_agents"]),
            )
        else:
            raise ValueError(f"unknown ledger record kind {kind!r}")
    return ledger


class LedgerSnapshots(snapshots.SnapshotStore[Ledger]):
    """Saves and loads the ledger (collection ``billing_ledger_snapshots``)."""

    def __init__(self, db: AsyncDatabase[Row], catalogue: PlanCatalogue) -> None:
        super().__init__(
            db,
            LedgerSnapshotChunk,
            LedgerSnapshotMeta,
            name="billing",
            decode=lambda records, position: from_records(records, position, catalogue),
            version=FORMAT_VERSION,
        )


class LedgerSnapshotter(snapshots.Snapshotter[Ledger]):
    """Snapshots the ledger when due. The ledger is always exactly the log up to its
    position (billing's own events are folded only when the log hands them back), so any
    moment between two folded batches will do."""

    def maybe_save(self, ledger: Ledger, *, force: bool = False) -> None:
        if ledger.position < 0:
            return
        self.save_if_due(
            lambda: Snapshot(to_records(ledger, self.replies), ledger.position, []),
            force=force,
        )
