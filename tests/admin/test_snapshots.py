"""Administration starts from its state's snapshot and folds only the log after it (real
broker, real store); the state is then exactly what a fold of the whole log gives."""

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent_service.admin.documents import SNAPSHOTS
from agent_service.admin.service import AdminService
from agent_service.admin.snapshot import FORMAT_VERSION, AdminSnapshots
from contracts import Envelope
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings
from tests.admin.admin_log import create_canned, later, opening, refused
from tests.admin.helpers import eventually
from tests.admin.test_admin_records import everything
from tests.snapshot_store import (
    UNUSABLE,
    assert_previous_snapshot_kept,
    crash_before_meta,
    meta_of,
    publish_until_a_save_fails,
    snapshot_collection,
    without_store,
)


@contextlib.asynccontextmanager
async def restarted_beside_a_whole_fold(
    settings: Settings,
) -> AsyncIterator[tuple[AdminService, AdminService, list[dict[str, Any]]]]:
    """Administration restarted on ``settings`` (its start's log lines captured), then one
    that folds the whole log, for comparison; both have read the same log when yielded."""
    with capture_logs() as logs:
        restarted = AdminService(settings)
        await restarted.start()
    full = AdminService(without_store(settings))
    await full.start()
    try:
        await eventually(
            lambda: restarted.state.position == full.state.position, what="the same position"
        )
        yield restarted, full, logs
    finally:
        await full.stop()
        await restarted.stop()


async def an_administered_account(settings: Settings, bus: Bus) -> tuple[list[Envelope], Envelope]:
    """The account's administration on the log, administration's commands decided by a
    service that then stops (its final snapshot); returns the log published first and the
    accepted command. (A decided subscription's worker is left to tests/admin/
    test_admin_records.py: a service stopped while a worker's reader is still subscribing
    can hang in the stream client's close.)"""
    head = opening()
    await bus.publish_many(head)
    first = AdminService(settings)
    await first.start()
    try:
        assert first.restored_from is None and first.folded_at_start == len(head) + 1
        rpc = RpcClient(bus)
        accepted = create_canned()
        assert (await rpc.command("admin", accepted)).ok
        assert (await rpc.command("admin", refused())).code == "not_found"
        await eventually(lambda: first.state.ahead.settled, what="the decisions read back")
    finally:
        await first.stop()
    return head, accepted


async def test_a_restart_folds_only_the_log_after_the_snapshot_and_ends_as_a_whole_fold(
    settings: Settings, bus: Bus
) -> None:
    head, accepted = await an_administered_account(settings, bus)
    meta = await meta_of(settings, SNAPSHOTS)
    assert meta["version"] == FORMAT_VERSION and meta["position"] > len(head)
    tail = later(first_copy=head[-1])  # a publisher's copy of a use before the snapshot
    await bus.publish_many(tail)

    async with restarted_beside_a_whole_fold(settings) as (second, full, logs):
        assert second.restored_from == meta["position"]
        assert second.folded_at_start == len(tail) + 1  # the tail and its own marker, no more
        [restored] = [e for e in logs if e["event"] == "admin_state_restored"]
        assert restored["snapshot_position"] == meta["position"]
        assert restored["folded"] == len(tail) + 1
        assert full.restored_from is None
        assert full.folded_at_start == meta["position"] + len(tail) + 3  # from 0, two markers
        assert everything(second.state) == everything(full.state)
        acme = second.state.tenants["acme"]
        assert acme.canned["hi"]["uses"] == 2  # the copy counted once
        assert set(acme.canned) == {"hi", "bye"} and acme.canned["hi"]["text"] == "Hi!"
        # the subscription's worker starts where a whole fold says: its own position
        [subscribed] = [n for n, e in enumerate(head) if e.type == "webhook.subscribed"]
        assert second.state.webhook_subscriptions()[("acme", "s1")]["since"] == subscribed
        # a redelivered command gets the answer it had before the restart
        first_answer = second.state.replies[accepted.id]
        again = await RpcClient(bus).command("admin", accepted)
        assert again.ok and again.event_ids == first_answer.event_ids


async def test_a_crash_between_the_chunks_and_meta_keeps_the_previous_snapshot(
    settings: Settings, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    head, _ = await an_administered_account(settings, bus)
    before = await meta_of(settings, SNAPSHOTS)

    crash_before_meta(monkeypatch, AdminSnapshots)
    second = AdminService(settings, snapshot_every=1, snapshot_min_interval_s=0)
    await second.start()
    try:
        assert second.restored_from == before["position"]
        await publish_until_a_save_fails(bus, later(first_copy=head[-1]), "admin")
        # administration goes on deciding
        assert (await RpcClient(bus).command("admin", refused())).code == "not_found"
    finally:
        await second.stop()  # its final snapshot fails the same way
    await assert_previous_snapshot_kept(settings, SNAPSHOTS, before)

    monkeypatch.undo()
    async with restarted_beside_a_whole_fold(settings) as (third, full, _):
        assert third.restored_from == before["position"]
        assert everything(third.state) == everything(full.state)


@UNUSABLE
async def test_a_snapshot_it_cannot_use_is_ignored_and_the_whole_log_folded(
    settings: Settings, bus: Bus, spoil: Callable[[Any], Any], reason: str
) -> None:
    await an_administered_account(settings, bus)
    await snapshot_collection(settings, SNAPSHOTS, spoil)
    async with restarted_beside_a_whole_fold(settings) as (restarted, full, logs):
        [ignored] = [e for e in logs if e["event"] == "admin_snapshot_ignored"]
        assert ignored["reason"] == reason
        assert restarted.restored_from is None
        assert restarted.folded_at_start == full.folded_at_start - 1  # full's marker is later
        assert everything(restarted.state) == everything(full.state)
    assert (await meta_of(settings, SNAPSHOTS))["version"] == FORMAT_VERSION  # replaced at stop
