"""The admin state as a snapshot's records and back, without a broker: what a start
restores is what the fold had, and folding the log's tail onto it gives what a whole fold
gives; a snapshot waits for administration's own decisions to come back from the log."""

from typing import Any

from agent_service.admin.snapshot import from_records, to_records
from agent_service.admin.state import AdminState
from contracts import Envelope
from tests.admin.admin_log import later, opening, refused, subscribe
from tests.deciders.harness import Desk, admin_desk
from tests.snapshot_store import stored


def restored(state: AdminState) -> AdminState:
    return from_records(stored(to_records(state)), state.position)


def fold(log: list[Envelope], state: AdminState | None = None, first: int = 1) -> AdminState:
    state = state or AdminState()
    for position, envelope in enumerate(log, start=first):
        state.apply(envelope, position)
    return state


def everything(state: AdminState) -> dict[str, Any]:
    """All a fold decides: the tenants, where webhook workers start, the ids seen, the
    recorded answers, how often the webhooks changed, the position."""
    return {
        "tenants": state.snapshot(),
        "webhooks": state.webhook_subscriptions(),
        "seen": sorted(state.seen),
        "replies": state.replies,
        "webhook_version": state.webhook_version,
        "position": state.position,
    }


async def decided(desk: Desk) -> list[Envelope]:
    """The opening, then administration's commands decided and read back from the log."""
    log = opening()
    desk.given(*log)
    for sent, ok in ((subscribe(), True), (refused(), False)):
        assert (await desk.when(sent)).ok == ok
        log += desk.published.events
        desk.given(*desk.published.events)
    return log


async def test_records_round_trip_keeps_the_whole_state() -> None:
    log = await decided(admin_desk())
    whole = fold(log)
    assert everything(restored(whole)) == everything(whole)
    acme = restored(whole).tenants["acme"]
    assert acme.canned["hi"]["uses"] == 1 and acme.agents["a1"].groups == ("g1",)
    assert acme.plan.mode == "saas" and acme.plan.subscriptions[0][1] == "team"
    assert restored(whole).tenants["globex"].pending is not None


async def test_the_tail_folded_onto_the_restored_state_gives_the_whole_fold() -> None:
    log = await decided(admin_desk())
    tail = later(first_copy=log[-3])  # a publisher's copy of a use before the snapshot
    whole = fold(log + tail)
    resumed = fold(tail, restored(fold(log)), first=len(log) + 1)
    assert everything(resumed) == everything(whole)
    assert resumed.tenants["acme"].canned["hi"]["uses"] == 2  # the copy counted once


async def test_a_decision_is_ahead_of_the_log_until_it_is_read_back() -> None:
    desk = admin_desk()
    desk.given(*opening())
    state = desk.decider.state
    await desk.when(subscribe())
    [subscribed] = desk.published.events
    assert not state.ahead.settled
    since_decided = state.webhook_subscriptions()[("acme", "s2")]["since"]
    state.apply(subscribed, position=100)
    assert state.ahead.settled
    # its own position, as a whole fold gives it (the position before, while it was ahead)
    assert since_decided < 100 == state.webhook_subscriptions()[("acme", "s2")]["since"]
