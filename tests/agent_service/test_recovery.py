"""Redelivered commands and restarts: same answers, no new events, state rebuilt from the log."""

from agent_service.service import AgentService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.agent_service.helpers import Desk, LogWatch, agent, wait_until


async def test_same_command_twice_gives_one_set_of_events(desk: Desk, watch: LogWatch) -> None:
    await desk.online("a1")
    await desk.online("a2")
    request = desk.command(
        "conversation.request", {"conversation_id": "c1", "visitor": {"id": "v1"}}, agent("a1")
    )
    first = await desk.send(request)
    second = await desk.send(request)
    assert first.ok and second.event_ids == first.event_ids and len(first.event_ids) == 3
    accept = desk.command(
        "conversation.accept", {"conversation_id": "c1", "agent_id": "a2"}, agent("a2")
    )
    accepted, again = await desk.send(accept), await desk.send(accept)
    assert accepted.ok and again.ok and again.event_ids == accepted.event_ids
    rejected = desk.command(
        "conversation.accept", {"conversation_id": "c1", "agent_id": "a1"}, agent("a1")
    )
    no, still_no = await desk.send(rejected), await desk.send(rejected)
    assert (no.code, still_no.code, still_no.event_ids) == (
        "already_assigned",
        "already_assigned",
        no.event_ids,
    )
    await desk.close(
        "c1", "a2"
    )  # a later decision: once it is in the log, everything before it is too
    await watch.wait_for("conversation.closed", "c1")
    assert [e.id for e in watch.caused_by(request.id)] == list(first.event_ids)
    assert [e.id for e in watch.caused_by(accept.id)] == list(accepted.event_ids)
    assert len(watch.of("conversation.requested", "c1")) == 1


async def test_restart_rebuilds_state_and_decisions_stay_consistent(
    routing_settings: Settings, bus: Bus, watch: LogWatch
) -> None:
    routing_settings = routing_settings.model_copy(
        update={"offer_timeout_s": 60}
    )  # no expiry mid-comparison
    desk = Desk(bus)
    first = AgentService(routing_settings)
    await first.start()
    try:
        await desk.online("a1")
        await desk.online("a2", max_chats=1)
        await desk.request("c1")
        accept = desk.command(
            "conversation.accept", {"conversation_id": "c1", "agent_id": "a1"}, agent("a1")
        )
        accepted = await desk.send(accept)
        assert accepted.ok
        await desk.request("c2")
        await desk.request("c3")  # a2's one slot holds the c2 offer, a1 got both offers: c3 too
        before = {c: await desk.state(c) for c in ("c1", "c2", "c3")}
        agents_before = await desk.query("agents.status")
    finally:
        await first.stop()

    second = AgentService(routing_settings)
    await second.start()
    try:
        assert {c: await desk.state(c) for c in ("c1", "c2", "c3")} == before
        assert await desk.query("agents.status") == agents_before
        assert (await desk.accept("c1", "a2")).code == "already_assigned"
        redelivered = await desk.send(accept)  # e.g. the broker redelivers after the crash
        assert redelivered.ok and redelivered.event_ids == accepted.event_ids
        assert (await desk.accept("c2", "a2")).ok
        await wait_until(lambda: watch.of("conversation.accepted", "c2"), what="c2 accepted")
        assert len(watch.of("conversation.accepted", "c1")) == 1
    finally:
        await second.stop()


async def test_offer_timers_survive_a_restart(
    routing_settings: Settings, bus: Bus, watch: LogWatch
) -> None:
    desk = Desk(bus)
    first = AgentService(routing_settings)
    await first.start()
    await desk.online("a1")
    await desk.request("c1")
    await first.stop()  # its timer dies with it
    second = AgentService(routing_settings)
    await second.start()
    try:
        await watch.wait_for("conversation.offer_withdrawn", "c1", reason="expired")
        await watch.wait_for(
            "conversation.offered", "c1", count=2
        )  # re-offered by the new instance
    finally:
        await second.stop()


async def test_standby_instance_takes_over_with_the_same_decisions(
    routing_settings: Settings, bus: Bus, watch: LogWatch
) -> None:
    routing_settings = routing_settings.model_copy(update={"offer_timeout_s": 60})
    desk = Desk(bus)
    active, standby = AgentService(routing_settings), AgentService(routing_settings)
    await active.start()
    await standby.start()  # single active consumer: it only folds until the active one goes
    try:
        await desk.online("a1")
        await desk.online("a2")
        await desk.request("c1")
        accept = desk.command(
            "conversation.accept", {"conversation_id": "c1", "agent_id": "a1"}, agent("a1")
        )
        accepted = await desk.send(accept)
        assert accepted.ok
        await active.stop()
        assert (await desk.accept("c1", "a2")).code == "already_assigned"
        assert (await desk.send(accept)).event_ids == accepted.event_ids
        await desk.request("c2")
        assert (await desk.accept("c2", "a2")).ok
        assert (
            standby.state.tenant("acme").conversations["c2"].agent_id == "a2"
        )  # the standby decided
    finally:
        await standby.stop()
        await active.stop()  # stop() is idempotent


async def test_crash_after_publish_before_ack_redelivers_with_the_same_events(
    service: AgentService, desk: Desk, watch: LogWatch
) -> None:
    await desk.online("a1")
    await desk.online("a2")
    await desk.request("c1")
    assert service.bus is not None
    real_publish = service.bus.publish_many
    crashes: list[list[str]] = []

    async def publish_then_crash(events):  # the process "dies" after the broker confirmed
        await real_publish(events)
        if not crashes:
            crashes.append([e.id for e in events])
            raise RuntimeError("crash between publish and ack")

    service.bus.publish_many = publish_then_crash  # type: ignore[method-assign]
    reply = await desk.accept("c1", "a1")  # answered by the redelivery
    assert reply.ok and list(reply.event_ids) == crashes[0]
    assert (await desk.accept("c1", "a2")).code == "already_assigned"
    await watch.wait_for("command.rejected", reason="already_assigned")
    assert len(watch.of("conversation.accepted", "c1")) == 1
    assert len([e for e in watch.events if e.id == crashes[0][0]]) == 1
