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
from relaydesk.store import database, make_client
from tests.admin.helpers import eventually
from tests.billing.ledger_log import change_plan, close_january, later, opening
from tests.deciders.harness import command

NOW = datetime(2026, 1, 25, 12, 0, tzinfo=UTC)  # the periodic closer has no month to close


def billing(settings: Settings, **options: Any) -> BillingService:
    return BillingService(settings, close_check_s=3600, clock=lambda: NOW, **options)


def without_store(settings: Settings) -> Settings:
    """No MongoDB: no snapshot, the whole log folded (the stream holds all of it here)."""
    return settings.model_copy(update={"mongo_url": None})


def public(service: BillingService) -> dict[str, Any]:
    """What billing answers and decides from: the account, and the whole ledger as records
    (tenants, usage, invoices, the dedupe window, the recorded answers)."""
    ledger = service.ledger
    account = BillingQueries(ledger, ledger.catalogue, lambda: NOW).account(
        AccountQuery(tenant="acme")
    )
    records = sorted(json.dumps(r, sort_keys=True) for r in to_records(ledger))
    return {"account": account.model_dump(mode="json"), "records": records}


async def snapshot_collection(settings: Settings, act: Callable[[Any], Any]) -> Any:
    client = make_client(settings.mongo_url or "")
    try:
        return await act(database(client, settings.mongo_db)[SNAPSHOTS])
    finally:
        await client.close()


async def meta_of(settings: Settings) -> dict[str, Any]:
    meta = await snapshot_collection(settings, lambda c: c.find_one({"_id": "_meta"}))
    assert meta is not None
    return dict(meta)


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
    meta = await meta_of(settings)
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
    before = await meta_of(settings)

    async def crashed(*_: Any) -> None:  # the chunks are written; the process dies here
        raise ConnectionError("store went away")

    monkeypatch.setattr(LedgerSnapshots, "switch", crashed)
    second = billing(settings, snapshot_every=1, snapshot_min_interval_s=0)
    await second.start()
    try:
        assert second.restored_from == before["position"]
        with capture_logs() as logs:
            await bus.publish_many(later(first_copy=head[-1]))
            await eventually(
                lambda: any(e["event"] == "billing_snapshot_failed" for e in logs),
                what="a snapshot write to fail",
            )
            # billing goes on deciding
            reply: CommandReply = await RpcClient(bus).command("billing", change_plan("free"))
            assert reply.ok
    finally:
        await second.stop()  # its final snapshot fails the same way

    chunks = await snapshot_collection(
        settings, lambda c: c.find({"_id": {"$ne": "_meta"}}).to_list()
    )
    assert {c["gen"] for c in chunks} - {before["gen"]}  # the crashed saves' chunks are there
    assert await meta_of(settings) == before

    monkeypatch.undo()
    async with restarted_beside_a_whole_fold(settings) as (third, full, _):
        assert third.restored_from == before["position"]
        assert public(third) == public(full)


async def corrupt_records(chunks: Any) -> None:
    await chunks.update_many(
        {"_id": {"$ne": "_meta"}}, {"$set": {"records": [{"k": "tenant", "t": "acme", "d": {}}]}}
    )


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda c: c.update_one({"_id": "_meta"}, {"$set": {"version": 0}}), "version"),
        (lambda c: c.update_one({"_id": "_meta"}, {"$unset": {"position": ""}}), "unreadable"),
        (corrupt_records, "unreadable"),
    ],
    ids=["older-version", "meta-of-another-layout", "records-that-do-not-decode"],
)
async def test_a_snapshot_it_cannot_use_is_ignored_and_the_whole_log_folded(
    settings: Settings, bus: Bus, spoil: Callable[[Any], Any], reason: str
) -> None:
    await a_billed_month(settings, bus)
    await snapshot_collection(settings, spoil)
    async with restarted_beside_a_whole_fold(settings) as (restarted, full, logs):
        [ignored] = [e for e in logs if e["event"] == "billing_snapshot_ignored"]
        assert ignored["reason"] == reason
        assert restarted.restored_from is None
        assert restarted.folded_at_start == full.folded_at_start - 1  # full's marker is later
        assert public(restarted) == public(full)
    assert (await meta_of(settings))["version"] == FORMAT_VERSION  # replaced at the stop
