"""Snapshots: a start from a MongoDB snapshot plus the log's tail equals a full replay."""

import json
from datetime import datetime

from agent_service.service import AgentService
from agent_service.snapshot import (
    COLLECTION,
    ReplyRecords,
    SnapshotSchedule,
    from_records,
    to_records,
)
from agent_service.state import Conversation, RoutingState
from contracts.replies import CommandReply
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.agent_service.helpers import Desk, set_tenant_settings


def comparable(state: RoutingState) -> list[str]:
    """Records as sorted JSON, times to the millisecond (what BSON keeps)."""

    def default(value: object) -> str:
        assert isinstance(value, datetime)
        return value.isoformat(timespec="milliseconds")

    return sorted(json.dumps(r, sort_keys=True, default=default) for r in to_records(state))


async def busy_morning(desk: Desk, service: AgentService) -> None:
    await set_tenant_settings(desk, service, routing_mode="least_busy", offline_text="closed")
    await desk.publish_admin(
        "permission_group.created",
        {"group_id": "g1", "name": "G1", "departments": ["sales"], "channels": ["web"]},
    )
    await desk.publish_admin(
        "agent.created",
        {"agent_id": "a1", "email": "a1@x.test", "name": "Ann", "groups": ["g1"], "max_chats": 3},
        stream="agent:a1",
    )
    await desk.online("a1")
    await desk.online("a2", max_chats=2)
    for n in range(6):
        await desk.request(f"c{n}", department="sales" if n % 2 else None)
    await desk.accept("c0", "a2")
    await desk.decline("c1", "a1")
    await desk.close("c0", "a2")


async def test_restart_from_snapshot_equals_full_replay(
    routing_settings: Settings, bus: Bus
) -> None:
    routing_settings = routing_settings.model_copy(update={"offer_timeout_s": 60})
    desk = Desk(bus)
    first = AgentService(routing_settings, snapshot_every=5)
    await first.start()
    try:
        await busy_morning(desk, first)
        expected = comparable(first.state)
    finally:
        await first.stop()  # saves a final snapshot

    client = make_client(routing_settings.mongo_url or "")
    meta = await database(client, routing_settings.mongo_db)[COLLECTION].find_one({"_id": "_meta"})
    await client.close()
    assert meta is not None and meta["position"] >= 0

    from_snapshot = AgentService(routing_settings)
    replayed = AgentService(routing_settings.model_copy(update={"mongo_url": None}))
    await from_snapshot.start()
    await replayed.start()
    try:
        assert (
            from_snapshot.projection is not None
            and from_snapshot.projection.restored_from == meta["position"]
        )
        assert replayed.projection is not None and replayed.projection.restored_from is None
        # both folded the two markers published since; the routing state is otherwise equal
        assert comparable(from_snapshot.state) == comparable(replayed.state) == expected
        [offered_to] = (await desk.state("c2"))["offered_to"]  # least busy: one agent
        assert (await desk.accept("c2", offered_to)).ok
        assert (await desk.accept("c0", "a1")).code == "conversation_closed"
    finally:
        await replayed.stop()
        await from_snapshot.stop()


def test_records_round_trip_keeps_every_field() -> None:
    state = RoutingState(position=41)
    tenant = state.tenant("acme")
    agent = tenant.agent("a1")
    agent.status, agent.groups, agent.active, agent.offers = "online", ("g1",), {"c1"}, {"c2"}
    tenant.settings["routing_mode"] = "round_robin"
    restored = from_records(to_records(state), 41)
    assert restored.tenants["acme"].agents["a1"] == agent
    assert restored.tenants["acme"].settings["routing_mode"] == "round_robin"
    assert restored.position == 41


def test_records_are_the_state_when_taken_not_what_it_becomes_while_they_are_written() -> None:
    # A snapshot's records are written in the background while routing goes on folding:
    # nothing in them may be shared with the live state.
    state = RoutingState(position=7)
    tenant = state.tenant("acme")
    conversation = Conversation("c1", "v1", "web", None, seq=1, offered_to={"a1"})
    conversation.read_by["a1"] = 2
    tenant.conversations["c1"] = conversation
    tenant.agent("a1").offers.add("c1")
    records = to_records(state)
    conversation.read_by["a1"] = 5
    conversation.offered_to.add("a2")
    tenant.agents["a1"].offers.add("c2")
    restored = from_records(records, 7).tenants["acme"]
    assert restored.conversations["c1"].read_by == {"a1": 2}
    assert restored.conversations["c1"].offered_to == {"a1"}
    assert restored.agents["a1"].offers == {"c1"}


def test_reply_records_are_made_once_and_follow_a_replaced_outcome() -> None:
    replies = ReplyRecords()
    first = CommandReply(ok=True, event_ids=("e1",), data={"status": "engaged"})
    made = replies.of([("cmd-1", first)])
    assert made == [{"k": "reply", "t": "cmd-1", "d": first.model_dump(mode="json")}]
    assert replies.of([("cmd-1", first)])[0] is made[0]  # not dumped again
    rejected = CommandReply(ok=False, code="conflict")
    assert replies.of([("cmd-1", rejected)])[0]["d"]["code"] == "conflict"
    state = RoutingState(position=3)
    state.replies["cmd-1"] = rejected
    assert from_records(to_records(state, replies), 3).replies == {"cmd-1": rejected}


def test_a_snapshot_is_due_every_n_events_but_no_sooner_than_the_interval() -> None:
    now = [100.0]
    schedule = SnapshotSchedule(
        every=1000, min_interval_s=10, clock=lambda: now[0], spread=lambda: 0.0
    )
    schedule.folded(999)
    assert not schedule.due()
    schedule.folded(1)
    assert schedule.due()  # the first one: nothing taken yet
    schedule.taken()
    schedule.folded(5000)  # a busy log: 5,000 events within the next 9.9 s
    now[0] += 9.9
    assert not schedule.due()
    assert schedule.due(force=True)  # stopping saves whatever the schedule says
    now[0] += 0.1
    assert schedule.due()
    schedule.taken()
    now[0] += 60
    schedule.folded(999)  # a quiet log: the count still decides
    assert not schedule.due()


def test_schedules_started_together_drift_apart_by_their_spread() -> None:
    """Four services' schedules start together; their snapshots must not stay together."""
    now = [0.0]
    early = SnapshotSchedule(1, 10, clock=lambda: now[0], spread=lambda: 0.0)
    late = SnapshotSchedule(1, 10, clock=lambda: now[0], spread=lambda: 1.0)
    taken: dict[str, list[float]] = {"early": [], "late": []}
    while now[0] < 60:
        for name, schedule in (("early", early), ("late", late)):
            schedule.folded(1)
            if schedule.due():
                schedule.taken()
                taken[name].append(now[0])
        now[0] += 0.5
    assert taken["early"] == [0, 10, 20, 30, 40, 50]
    assert taken["late"] == [0, 15, 30, 45]  # up to half the interval more, drawn each time
