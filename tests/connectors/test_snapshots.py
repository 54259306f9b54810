"""The connectors start from a snapshot of their fold and fold only the log after it (real
broker, real store, a fake Messenger): the fold is then what a fold of the whole log gives,
and every agent reply reaches the platform once across the restart."""

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from connectors.config import ConnectorDirectory
from connectors.documents import CONNECTOR_DOCUMENTS, SNAPSHOTS
from connectors.follower import LogFollower
from connectors.plans import TenantPlans
from connectors.service import ConnectorsService
from connectors.snapshot import FORMAT_VERSION, ConnectorSnapshots, from_records, to_records
from connectors.store import ConnectorStore
from contracts import Envelope, LoggedEvent
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import catch_up
from relaydesk.sealing import SecretBox
from relaydesk.settings import Settings
from relaydesk.store import Checkpoint, Checkpoints, bind_documents, database, make_client
from tests.connectors.contract import TENANT
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.harness import MessengerDriver
from tests.connectors.helpers import LogWatch, agent_reply, eventually
from tests.deciders.harness import event
from tests.snapshot_store import (
    UNUSABLE,
    assert_previous_snapshot_kept,
    crash_before_meta,
    meta_of,
    publish_until_a_save_fails,
    snapshot_collection,
    stored,
)


def plan_changed(plan: str) -> Envelope:
    data = {"plan": plan, "effective": "2026-03-01"}
    return event("billing.subscription_changed", data, stream=f"billing:{TENANT}", tenant=TENANT)


async def test_records_round_trip_a_connector_logged_without_public_fields() -> None:
    """Configurations logged before public fields existed restore as they fold."""
    box = SecretBox("test-secrets-key")
    directory, plans = ConnectorDirectory(box), TenantPlans()
    data = {"connector_id": "tg", "platform": "telegram", "sealed_config": box.seal({"a": "b"})}
    directory.apply(LoggedEvent(position=3, envelope=event("connector.configured", data)))
    follower = LogFollower(directory, Any, Any, Any, {}, plans)  # type: ignore[arg-type]
    follower.folded_to = 3
    restored = from_records(stored(to_records(directory, plans, follower)), 3, box)
    assert restored.directory.configured() == directory.configured()


def everything(directory: ConnectorDirectory, plans: TenantPlans, follower: LogFollower) -> Any:
    """All the fold holds: connectors (secrets opened), pauses, answers, plans and their
    events' ids, the log's secrets of each connector, the platform conversations."""
    state, followed = directory.state(), follower.state()
    return {
        "connectors": sorted(directory.configured(), key=lambda c: c.connector_id),
        "pauses": sorted(state["pauses"]),
        "replies": directory.replies,
        "plans": plans.state(),
        "sealed": sorted(followed["sealed"]),
        "conversations": followed["conversations"],
        "position": follower.folded_to,
    }


class NoDeliveries:
    """The whole fold below sends nothing."""

    def wake(self) -> None:
        return None

    def resume(self, connector_id: str) -> None:
        return None


async def whole_fold(settings: Settings, bus: Bus, service: ConnectorsService) -> Any:
    """The fold of the whole log (as a start without a snapshot folds it), its effects kept
    apart: a database of its own (no platform chat there: no reply is queued) and no
    deliverer."""
    directory, plans = ConnectorDirectory(service.box), TenantPlans()
    client = make_client(settings.mongo_url or "")
    name = f"{settings.mongo_db}_whole_fold"
    try:
        db = database(client, name)
        await bind_documents(db, (*CONNECTOR_DOCUMENTS, Checkpoint))
        deliverer: Any = NoDeliveries()
        follower = LogFollower(directory, ConnectorStore(db), Checkpoints(db), deliverer, {}, plans)
        await follower.load()
        async with LogReader(bus, start="first", name="whole-fold") as reader:
            await catch_up(bus, reader, follower.apply, service="whole-fold")
    finally:
        await client.drop_database(name)
        await client.close()
    return directory, plans, follower


@contextlib.asynccontextmanager
async def restarted(settings: Settings) -> AsyncIterator[tuple[ConnectorsService, list[Any]]]:
    with capture_logs() as logs:
        service = ConnectorsService(settings)
        await service.start()
    try:
        yield service, logs
    finally:
        await service.stop()


async def assert_a_whole_fold(settings: Settings, bus: Bus, service: ConnectorsService) -> None:
    directory, plans, follower = await whole_fold(settings, bus, service)
    assert service.follower is not None
    live = service.follower
    await eventually(lambda: live.folded_to == follower.folded_to, what="the same position")
    assert everything(service.directory, service.plans, live) == everything(
        directory, plans, follower
    )


async def a_connected_chat(
    settings: Settings, bus: Bus, fake: FakeMessenger, watch: LogWatch
) -> tuple[MessengerDriver, str]:
    """A Messenger connector configured by its command, a chat, an agent's reply sent, a plan
    change; then the service stops (its final snapshot). Returns the conversation."""
    await bus.publish(event("tenant.created", {"mode": "saas", "plan": "team"}, tenant=TENANT))
    first = ConnectorsService(settings)
    await first.start()
    try:
        assert first.restored_from is None
        driver = MessengerDriver(fake, first)
        assert (await driver.setup(bus, TENANT)).ok
        assert (await driver.send("psid-9", "hello")).status_code == 200
        [inbound] = await watch.wait_for("connector.inbound_received")
        conversation_id = inbound.data["conversation_id"]
        sent = await agent_reply(bus, TENANT, conversation_id, "before")
        await watch.wait_for("connector.outbound_sent", message_id=sent)
        await bus.publish(plan_changed("business"))
        await eventually(lambda: first.directory.ahead.settled, what="the decisions read back")
    finally:
        await first.stop()
    return driver, conversation_id


async def test_a_restart_folds_only_the_log_after_the_snapshot_and_ends_as_a_whole_fold(
    connector_settings: Settings,
    agent_service: object,
    fake_messenger: FakeMessenger,
    bus: Bus,
    watch: LogWatch,
) -> None:
    driver, conversation_id = await a_connected_chat(connector_settings, bus, fake_messenger, watch)
    meta = await meta_of(connector_settings, SNAPSHOTS)
    assert meta["version"] == FORMAT_VERSION
    changed = watch.of("billing.subscription_changed")[0]
    await bus.publish(changed)  # a publisher's copy of a plan change before the snapshot
    after = await agent_reply(bus, TENANT, conversation_id, "after")

    async with restarted(connector_settings) as (second, logs):
        assert second.restored_from == meta["position"]
        [restored] = [e for e in logs if e["event"] == "connectors_state_restored"]
        assert restored["snapshot_position"] == meta["position"]
        # the tail: the copy, the reply, what routing and the connectors logged since, a marker
        assert 3 <= restored["folded"] == second.folded_at_start < 12
        await watch.wait_for("connector.outbound_sent", message_id=after)
        await assert_a_whole_fold(connector_settings, bus, second)
        plan = second.plans.get(TENANT)
        assert plan is not None and [p for _, p in plan.subscriptions] == ["team", "business"]
        assert second.directory.find("fb1") is not None
        assert driver.delivered() == ["before", "after"]  # each reply once


async def test_a_crash_between_the_chunks_and_meta_keeps_the_previous_snapshot(
    connector_settings: Settings,
    agent_service: object,
    fake_messenger: FakeMessenger,
    bus: Bus,
    watch: LogWatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await a_connected_chat(connector_settings, bus, fake_messenger, watch)
    before = await meta_of(connector_settings, SNAPSHOTS)
    crash_before_meta(monkeypatch, ConnectorSnapshots)
    second = ConnectorsService(connector_settings, snapshot_every=1, snapshot_min_interval_s=0)
    await second.start()
    try:
        assert second.restored_from == before["position"]
        await publish_until_a_save_fails(bus, [plan_changed("free")], "connectors")
    finally:
        await second.stop()  # its final snapshot fails the same way
    await assert_previous_snapshot_kept(connector_settings, SNAPSHOTS, before)

    monkeypatch.undo()
    async with restarted(connector_settings) as (third, _):
        assert third.restored_from == before["position"]
        await assert_a_whole_fold(connector_settings, bus, third)


@UNUSABLE
async def test_a_snapshot_it_cannot_use_is_ignored_and_the_whole_log_folded(
    connector_settings: Settings,
    agent_service: object,
    fake_messenger: FakeMessenger,
    bus: Bus,
    watch: LogWatch,
    spoil: Callable[[Any], Any],
    reason: str,
) -> None:
    driver, _ = await a_connected_chat(connector_settings, bus, fake_messenger, watch)
    await snapshot_collection(connector_settings, SNAPSHOTS, spoil)
    async with restarted(connector_settings) as (again, logs):
        [ignored] = [e for e in logs if e["event"] == "connectors_snapshot_ignored"]
        assert ignored["reason"] == reason
        assert again.restored_from is None
        await assert_a_whole_fold(connector_settings, bus, again)
        assert driver.delivered() == ["before"]  # not sent again by the whole fold
    assert (await meta_of(connector_settings, SNAPSHOTS))["version"] == FORMAT_VERSION
