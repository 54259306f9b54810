"""The ledger as a snapshot's records and back, without a broker: what a start restores is
what the fold had, and folding the log's tail onto it gives what a whole fold gives."""

import pytest

from billing_service.ledger import Ledger
from billing_service.snapshot import from_records, to_records
from contracts import Envelope
from contracts.plans import PlanCatalogue
from relaydesk.snapshots import ReplyRecords
from tests.billing.ledger_log import change_plan, close_january, later, message, opening
from tests.deciders.harness import Desk, billing_desk, event
from tests.snapshot_store import stored


def restored(ledger: Ledger) -> Ledger:
    return from_records(stored(to_records(ledger)), ledger.position, ledger.catalogue)


async def a_month(desk: Desk) -> list[Envelope]:
    """The account's month with billing's own decisions folded as the log hands them back."""
    log = opening()
    desk.given(*log)
    for sent in (change_plan(), change_plan(effective="2026-01-01"), change_plan("gold")):
        await desk.when(sent)
        log += desk.published.events
        desk.given(*desk.published.events)
    log.append(close_january())
    desk.given(log[-1])
    ledger = desk.decider.ledger
    [(tenant, invoice)] = ledger.unissued()
    issued = event("billing.invoice_issued", invoice, stream=f"billing:{tenant}")
    payment = {"invoice_id": invoice["invoice_id"], "amount_cents": 1234, "method": "manual"}
    log += [issued, event("billing.payment_recorded", payment, stream=f"billing:{tenant}")]
    desk.given(*log[-2:])
    return log


def fold(log: list[Envelope], ledger: Ledger | None = None, first: int = 1) -> Ledger:
    ledger = ledger or Ledger(PlanCatalogue.load())
    for position, envelope in enumerate(log, start=first):
        ledger.apply(envelope, position)
    return ledger


def assert_same(one: Ledger, other: Ledger) -> None:
    assert one.tenants == other.tenants
    assert one.replies == other.replies
    assert one.seen_ids() == other.seen_ids()
    assert one.position == other.position


async def test_records_round_trip_keeps_the_whole_ledger() -> None:
    desk = billing_desk()
    await a_month(desk)
    ledger: Ledger = desk.decider.ledger
    state = ledger.tenants["acme"]
    assert state.invoices and state.computed and state.subscriptions and state.connectors
    assert len(ledger.replies) == 3 and not all(r.ok for r in ledger.replies.values())
    back = restored(ledger)
    assert_same(back, ledger)
    [invoice] = back.tenants["acme"].invoices.values()
    assert invoice["paid_cents"] == 1234 and back.tenants["acme"].balance_cents() > 0


async def test_snapshot_then_the_tail_equals_a_whole_fold_with_a_copy_across_the_position() -> None:
    desk = billing_desk()
    head = await a_month(desk)
    copied = next(e for e in head if e.type == "message.sent")  # folded before the snapshot
    tail = later(first_copy=copied)
    whole = fold(head + tail)
    from_snapshot = fold(tail, restored(desk.decider.ledger), first=len(head) + 1)
    assert_same(from_snapshot, whole)
    assert sum(u.messages for u in whole.tenants["acme"].usage.values()) == 9  # the copy once


def test_records_are_the_ledger_when_taken_not_what_it_becomes_while_written() -> None:
    ledger = fold(opening())
    ledger.apply(close_january(), 100)
    [(tenant, invoice)] = ledger.unissued()
    ledger.apply(event("billing.invoice_issued", invoice, stream=f"billing:{tenant}"), 101)
    records = to_records(ledger, ReplyRecords())
    payment = {"invoice_id": invoice["invoice_id"], "amount_cents": 500, "method": "manual"}
    ledger.apply(event("billing.payment_recorded", payment, stream=f"billing:{tenant}"), 102)
    ledger.apply(message(99), 103)
    back = from_records(stored(records), 101, ledger.catalogue)
    [issued] = back.tenants["acme"].invoices.values()
    assert issued["paid_cents"] == 0
    assert sum(u.messages for u in back.tenants["acme"].usage.values()) == 5


def test_records_it_cannot_read_are_refused_not_half_restored() -> None:
    records = to_records(fold(opening()))
    with pytest.raises(ValueError, match="unknown ledger record kind"):
        from_records([*records, {"k": "tenant-v2", "t": "acme", "d": {}}], 1, PlanCatalogue.load())
    with pytest.raises(KeyError):
        from_records([{"k": "tenant", "t": "acme", "d": {}}], 1, PlanCatalogue.load())
