"""Billing starts from its ledger's snapshot and folds only the log after it (real broker,
real store); the state is then exactly what a fold of the whole log gives."""

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from billing_service.documents import SNAPSHOTS
from billing_service.queries import BillingQueries
from billing_service.service import BillingService
from billing_service.snapshot import FORMAT_VERSION, LedgerSnapshots, to_records
from contracts import Envelope
from contracts.queries.billing import AccountQuery
from contracts.replies import CommandReply
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.billing.ledger_log import change_plan, close_january, later, opening
from tests.deciders.harness import command
from tests.snapshot_store import (
    UNUSABLE,
    assert_previous_snapshot_kept,
    crash_before_meta,
    meta_of,
    publish_until_a_save_fails,
    snapshot_collection,
    without_store,
)

NOW = datetime(2026, 1, 25, 12, 0, tzinfo=UTC)  # the periodic closer has no month to close


def billing(settings: Settings, **options: Any) -> BillingService:
    return BillingService(settings, close_check_s=3600, clock=lambda: NOW, **options)


def public(service: BillingService) -> dict[str, Any]:
    """What billing answers and decides from: the account, and the whole ledger as records
    (tenants, usage, invoices, the dedupe window, the recorded answers)."""
    ledger = service.ledger
    account = BillingQueries(ledger, ledger.catalogue, lambda: NOW).account(
        AccountQuery(tenant="acme")
    )
    records = sorted(json.dumps(r, sort_keys=True) for r in to_records(ledger))
    return {"account": account.model_dump(mode="json"), "records": records}


@contextlib.asynccontextmanager
async def restarted_beside_a_whole_fold(
    settings: Settings,
) -> AsyncIterator[tuple[BillingService, BillingService, list[dict[str, Any]]]]:
    """Billing restarted on ``settings`` (its start's log lines captured), then one that
    folds the whole log, for comparison."""
    with capture_logs() as logs:
        restarted = billing(settings)
        await restarted.start()
    full = billing(without_store(settings))
    await full.start()
    try:
        yield restarted, full, logs
    finally:
        await full.stop()
        await restarted.stop()


async def a_billed_month(settings: Settings, bus: Bus) -> tuple[list[Envelope], Envelope]:
    """The account's month on the log, decided by a billing that then stops (its final
    snapshot); returns the log published and billing's accepted command."""
    head = opening()
    await bus.publish_many(head)
    first = billing(settings)
    await first.start()
    try:
        assert first.restored_from is None and first.folded_at_start == len(head) + 1
        rpc = RpcClient(bus)
        accepted = change_plan()
        assert (await rpc.command("billing", accepted)).ok
        assert (await rpc.command("billing", change_plan(effective="2026-01-01"))).code
        await bus.publish(close_january())
        ledger = first.ledger
        invoices = await eventually(lambda: ledger.tenants["acme"].invoices, what="the invoice")
        [number] = invoices
        pay = {"number": number, "amount_cents": 1000, "method": "manual", "reference": "b1"}
        assert (await rpc.command("billing", command("billing.record_payment", pay))).ok
        await eventually(lambda: invoices[number]["paid_cents"] == 1000, what="the payment")
    finally:
        await first.stop()
    return head, accepted


async def test_a_restart_folds_only_the_log_after_the_snapshot_and_ends_as_a_whole_fold(
    settings: Settings, bus: Bus
) -> None:
    head, accepted = await a_billed_month(settings, bus)
    meta = await meta_of(settings, SNAPSHOTS)
    assert meta["version"] == FORMAT_VERSION and meta["position"] > len(head)
    tail = later(first_copy=head[-1])  # a publisher's copy of a message before the snapshot
    await bus.publish_many(tail)

    async with restarted_beside_a_whole_fold(settings) as (second, full, logs):
        assert second.restored_from == meta["position"]
        assert second.folded_at_start == len(tail) + 1  # the tail and its own marker, no more
        [restored] = [e for e in logs if e["event"] == "billing_ledger_restored"]
        assert restored["snapshot_position"] == meta["position"]
        assert restored["folded"] == len(tail) + 1
        assert full.restored_from is None
        assert full.folded_at_start == meta["position"] + len(tail) + 3  # from 0, two markers
        assert public(second) == public(full)
        usage = public(second)["account"]["usage"]
        assert usage["messages"] == 5  # January's: the copy counted once
        # a redelivered command gets the answer it had before the restart
        first_answer = second.ledger.replies[accepted.id]
        again = await RpcClient(bus).command("billing", accepted)
        assert again.ok and again.event_ids == first_answer.event_ids


async def test_a_crash_between_the_chunks_and_meta_keeps_the_previous_snapshot(
    settings: Settings, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    head, _ = await a_billed_month(settings, bus)
    before = await meta_of(settings, SNAPSHOTS)

    crash_before_meta(monkeypatch, LedgerSnapshots)
    second = billing(settings, snapshot_every=1, snapshot_min_interval_s=0)
    await second.start()
    try:
        assert second.restored_from == before["position"]
        await publish_until_a_save_fails(bus, later(first_copy=head[-1]), "billing")
        # billing goes on deciding
        reply: CommandReply = await RpcClient(bus).command("billing", change_plan("free"))
        assert reply.ok
    finally:
        await second.stop()  # its final snapshot fails the same way
    await assert_previous_snapshot_kept(settings, SNAPSHOTS, before)

    monkeypatch.undo()
    async with restarted_beside_a_whole_fold(settings) as (third, full, _):
        assert third.restored_from == before["position"]
        assert public(third) == public(full)


@UNUSABLE
async def test_a_snapshot_it_cannot_use_is_ignored_and_the_whole_log_folded(
    settings: Settings, bus: Bus, spoil: Callable[[Any], Any], reason: str
) -> None:
    await a_billed_month(settings, bus)
    await snapshot_collection(settings, SNAPSHOTS, spoil)
    async with restarted_beside_a_whole_fold(settings) as (restarted, full, logs):
        [ignored] = [e for e in logs if e["event"] == "billing_snapshot_ignored"]
        assert ignored["reason"] == reason
        assert restarted.restored_from is None
        assert restarted.folded_at_start == full.folded_at_start - 1  # full's marker is later
        assert public(restarted) == public(full)
    assert (await meta_of(settings, SNAPSHOTS))["version"] == FORMAT_VERSION  # replaced at the stop
