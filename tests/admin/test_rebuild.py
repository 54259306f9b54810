"""The admin state is a fold of the log: a rebuild gives the same; edits carry before/after."""

import httpx

from agent_service.admin.service import AdminService
from agent_service.admin.state import AdminState
from contracts import Actor, Envelope
from contracts.envelope import LoggedEvent
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import catch_up
from tests.admin.helpers import eventually, new_agent, owner_session
from tests.system import RunningSystem


async def fold_log(bus: Bus, times: int = 1) -> tuple[AdminState, list[LoggedEvent]]:
    state, seen = AdminState(), []

    async def apply(batch: list[LoggedEvent]) -> None:
        seen.extend(batch)
        for _ in range(times):  # a redelivered event must change nothing
            for logged in batch:
                state.apply(logged.envelope, logged.position)

    async with LogReader(bus, start="first", name="rebuild-test") as reader:
        await catch_up(bus, reader, apply, service="rebuild-test")
    return state, seen


def used(tenant: str, canned_id: str) -> Envelope:
    data = {
        "conversation_id": "c1",
        "message_id": "m1",
        "body": "hi",
        "author_kind": "agent",
        "author_id": "a1",
        "canned_response_id": canned_id,
    }
    return Envelope(
        type="message.sent",
        v=2,
        tenant=tenant,
        stream="conversation:c1",
        actor=Actor(kind="agent", id="a1"),
        data=data,
    )


async def test_rebuilding_from_the_log_gives_the_same_state(
    system: RunningSystem, bus: Bus
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "acme")
        await owner_session(system, http, "globex")
        ann_id, _ = await new_agent(http, owner, "acme", "ann")
        bob_id, _ = await new_agent(http, owner, "acme", "bob")
        group = (
            await http.post(
                "/api/admin/groups",
                headers=owner,
                json={"name": "Sales", "permissions": ["view_audit"]},
            )
        ).json()["group_id"]
        changes = [
            await http.patch(
                f"/api/admin/groups/{group}", headers=owner, json={"channels": ["telegram"]}
            ),
            await http.patch(
                f"/api/admin/agents/{ann_id}",
                headers=owner,
                json={"role": "supervisor", "groups": [group]},
            ),
            await http.delete(f"/api/admin/agents/{bob_id}", headers=owner),
        ]
        canned = (
            await http.post(
                "/api/canned",
                headers=owner,
                json={"shortcut": "hi", "text": "Hello", "language": "en"},
            )
        ).json()["canned_id"]
        gone = (
            await http.post("/api/canned", headers=owner, json={"shortcut": "old", "text": "Old"})
        ).json()["canned_id"]
        changes.append(await http.delete(f"/api/canned/{gone}", headers=owner))
        changes.append(
            await http.patch(
                "/api/admin/settings",
                headers=owner,
                json={"timezone": "Europe/Berlin", "business_hours": {"mon": [["09:00", "17:00"]]}},
            )
        )
        hook = (
            await http.post(
                "/api/admin/webhooks",
                headers=owner,
                json={"url": "https://hooks.acme.test/x", "event_types": ["webhook.unsubscribed"]},
            )
        ).json()
        changes.append(
            await http.delete(f"/api/admin/webhooks/{hook['subscription_id']}", headers=owner)
        )
        assert [r.status_code for r in changes] == [200] * len(changes), [r.text for r in changes]
    await bus.publish_many([used("acme", canned), used("acme", canned), used("globex", canned)])
    live = next(s for s in system.services if isinstance(s, AdminService)).state
    await eventually(lambda: live.tenants["acme"].canned[canned]["uses"] == 2, what="usage counted")

    rebuilt, events = await fold_log(bus)
    twice, _ = await fold_log(bus, times=2)
    assert rebuilt.snapshot() == live.snapshot() == twice.snapshot()
    acme = rebuilt.tenants["acme"]
    assert acme.agents[ann_id].role == "supervisor" and acme.agents[bob_id].removed
    assert acme.settings["timezone"] == "Europe/Berlin" and acme.canned[canned]["uses"] == 2
    assert set(acme.canned) == {canned} and acme.webhooks == {}
    change = next(e.envelope for e in events if e.envelope.type == "agent.updated")
    assert (
        change.actor.kind == "admin"
        and change.data["before"]["role"] == "agent"
        and change.data["after"]["role"] == "supervisor"
    )
    assert all(
        "correct horse" not in e.envelope.model_dump_json() for e in events
    )  # only hashes travel
