"""The remaining permissions, each refused without it and allowed with it, on one shared system.

Real accounts throughout: the owner makes permission groups, agents in them log in. No
built-in role lacks ``see_history`` or ``transfer``, so their refusal is proven with an
access token (signed with the gateway's key) whose permissions omit just that one, as a
narrower role would issue.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from connectors.service import ConnectorsService
from gateway.auth.permissions import (
    MANAGE_CONNECTORS,
    SEE_ALL,
    SEE_HISTORY,
    TRANSFER,
    VIEW_AUDIT,
    VIEW_BILLING,
    VIEW_REPORTS,
    effective_permissions,
)
from gateway.auth.tokens import AgentPrincipal, TokenService
from tests.admin.helpers import eventually, new_agent, owner_session
from tests.gateway.wsclient import Client
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem

pytestmark = pytest.mark.asyncio(loop_scope="module")
TENANT = "perm"


@dataclass
class World:
    system: RunningSystem
    http: httpx.AsyncClient
    owner: dict[str, str]
    plain: dict[str, str]  # a plain agent: role "agent", no groups
    ann_id: str
    ann: Client  # kept connected: a disconnected agent's chats are requeued after a grace period
    live_id: str  # engaged with Ann
    closed_id: str  # Ann served it and closed it
    closed_visitor: str


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_without(system: RunningSystem, agent_id: str, permission: str) -> str:
    principal = AgentPrincipal(
        tenant=TENANT,
        agent_id=agent_id,
        role="agent",
        name=agent_id,
        permissions=effective_permissions("agent") - {permission},
    )
    return TokenService(system.settings).issue_access(principal)


async def served(system: RunningSystem, ann: Client, visitor: str, body: str) -> str:
    customer = await Client.connect(system.gateway.ws_url, system.visitor_token(TENANT, visitor))
    conversation_id = (await customer.op("start", visitor={"name": visitor}))["conversation_id"]
    await ann.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await ann.op("accept", conversation_id=conversation_id))["t"] == "ack"
    assert (await customer.op("send", conversation_id=conversation_id, body=body))["t"] == "ack"
    await customer.close()
    return conversation_id


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(vhosts: RabbitVhosts, mongo_server: MongoServer) -> AsyncIterator[World]:
    async with (
        shared_system(vhosts, mongo_server, connectors_port=0) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        connectors = ConnectorsService(system.settings)
        await connectors.start()
        try:
            owner = await owner_session(
                system, http, TENANT, "saas", plan="business"
            )  # seats for every role and group tested
            _, plain = await new_agent(http, owner, TENANT, "plain")
            ann_id, ann_auth = await new_agent(http, owner, TENANT, "ann")
            ann = await Client.connect(system.gateway.ws_url, ann_auth["Authorization"].split()[1])
            assert (await ann.op("status", status="online"))["t"] == "ack"
            live_id = await served(system, ann, "v-live", "live secret for Ann")
            closed_id = await served(system, ann, "v-closed", "closed secret")
            assert (await ann.op("close", conversation_id=closed_id))["t"] == "ack"
            world = World(system, http, owner, plain, ann_id, ann, live_id, closed_id, "v-closed")

            async def archived() -> bool:
                closed = await http.get(f"/api/conversations/{closed_id}/transcript", headers=owner)
                live = await http.get(f"/api/conversations/{live_id}/messages", headers=owner)
                return (
                    closed.status_code == 200
                    and closed.json()["conversation"]["status"] == "closed"
                    and "live secret" in live.text
                )

            await eventually(archived, what="both conversations archived")
            yield world
            await ann.close()
        finally:
            await connectors.stop()


async def granted(world: World, permission: str) -> dict[str, str]:
    """A fresh agent whose only extra is a permission group granting ``permission``."""
    group = await world.http.post(
        "/api/admin/groups",
        headers=world.owner,
        json={"name": f"grants {permission}", "permissions": [permission]},
    )
    assert group.status_code == 201, group.text
    _, headers = await new_agent(
        world.http,
        world.owner,
        TENANT,
        permission.replace("_", "-"),
        groups=[group.json()["group_id"]],
    )
    return headers


async def refused(
    world: World, headers: dict[str, str], path: str, permission: str | None, **params: str
) -> None:
    response = await world.http.get(path, headers=headers, params=params)
    assert response.status_code == 403, (path, response.text)
    assert response.json()["error"]["code"] == "forbidden"
    if permission:
        assert permission in response.json()["error"]["message"], response.text
    assert "secret" not in response.text


async def allowed(
    world: World, headers: dict[str, str], path: str, **params: str
) -> httpx.Response:
    response = await world.http.get(path, headers=headers, params=params)
    assert response.status_code == 200, (path, response.text)
    return response


async def test_see_all_conversations_lists_all_and_reads_another_agents_live_conversation(
    world: World,
) -> None:
    see_all = await granted(world, SEE_ALL)
    await refused(world, world.plain, "/api/conversations", SEE_ALL, view="all")
    listed = await allowed(world, see_all, "/api/conversations", view="all")
    assert {world.live_id, world.closed_id} <= {c.get("conversation_id") for c in listed.json()}
    for path in (
        f"/api/conversations/{world.live_id}/messages",
        f"/api/conversations/{world.live_id}/transcript",
    ):
        # The plain agent has see_history, which must not open a live chat of someone else.
        await refused(world, world.plain, path, None)
        assert "live secret for Ann" in (await allowed(world, see_all, path)).text


async def test_see_history_opens_past_conversations_and_a_visitors_previous_ones(
    world: World,
) -> None:
    no_history = auth(token_without(world.system, "plain", SEE_HISTORY))
    await refused(
        world,
        no_history,
        "/api/conversations",
        SEE_ALL,
        view="all",
        visitor_id=world.closed_visitor,
    )
    listed = await allowed(
        world, world.plain, "/api/conversations", view="all", visitor_id=world.closed_visitor
    )
    assert [c["conversation_id"] for c in listed.json()] == [world.closed_id]
    for path in (
        f"/api/conversations/{world.closed_id}/messages",
        f"/api/conversations/{world.closed_id}/transcript",
    ):
        await refused(world, no_history, path, None)
        assert "closed secret" in (await allowed(world, world.plain, path)).text


async def test_retry_delivery_is_for_the_agent_writing_in_the_conversation(world: World) -> None:
    """The console's "retry" under a parked platform reply (docs/connectors.md)."""
    plain = await Client.connect(
        world.system.gateway.ws_url, world.plain["Authorization"].split()[1]
    )
    try:
        fields = {"conversation_id": world.live_id, "message_id": "m-parked-1"}
        no = await plain.op("retry_delivery", **fields)
        assert no["t"] == "error" and no["code"] == "forbidden", no
        closed = await world.ann.op(
            "retry_delivery", conversation_id=world.closed_id, message_id="m-parked-2"
        )
        assert closed["t"] == "error" and closed["code"] == "conversation_closed", closed
        yes = await world.ann.op("retry_delivery", **fields)
        assert yes["t"] == "ack", yes
        got = await world.ann.wait_event(
            "connector.outbound_retry_requested", conversation_id=world.live_id
        )
        assert got["event"]["id"] == yes["event_id"]
        assert got["event"]["data"]["message_id"] == "m-parked-1"
    finally:
        await plain.close()


async def test_transfer_over_the_websocket_needs_the_transfer_permission(world: World) -> None:
    bob_id, bob_auth = await new_agent(world.http, world.owner, TENANT, "bob")
    bob = await Client.connect(world.system.gateway.ws_url, bob_auth["Authorization"].split()[1])
    assert (await bob.op("status", status="online"))["t"] == "ack"
    narrow = await Client.connect(
        world.system.gateway.ws_url, token_without(world.system, world.ann_id, TRANSFER)
    )
    ann = world.ann
    try:
        no = await narrow.op("transfer", conversation_id=world.live_id, to_agent_id=bob_id)
        assert no["t"] == "error" and no["code"] == "forbidden" and TRANSFER in no["message"], no
        yes = await ann.op("transfer", conversation_id=world.live_id, to_agent_id=bob_id)
        assert yes["t"] == "ack", yes
        offered = await bob.wait_event("conversation.offered", conversation_id=world.live_id)
        assert bob_id in offered["event"]["data"]["agent_ids"]
        requested = await ann.wait_event(
            "conversation.transfer_requested", conversation_id=world.live_id
        )
        assert requested["event"]["actor"]["id"] == world.ann_id
        # The refused attempt put nothing on the log: exactly one request, the permitted one.
        assert (
            len(
                [
                    f
                    for f in ann.events("conversation.transfer_requested")
                    if f["event"]["data"]["conversation_id"] == world.live_id
                ]
            )
            == 1
        )
    finally:
        for client in (bob, narrow):
            await client.close()


async def test_transfer_dialog_lists_group_names_to_agents_who_may_transfer(world: World) -> None:
    # A plain agent cannot list groups as managers do, so the dialog's group field was free
    # text: /api/transfer/groups gives names (and ids) only, to whoever may transfer.
    made = await world.http.post(
        "/api/admin/groups",
        headers=world.owner,
        json={"name": "Returns desk", "permissions": [VIEW_REPORTS]},
    )
    assert made.status_code == 201, made.text
    await refused(world, world.plain, "/api/admin/groups", "manage_agents")
    names = (await allowed(world, world.plain, "/api/transfer/groups")).json()
    assert {"group_id": made.json()["group_id"], "name": "Returns desk"} in names
    assert all(set(group) == {"group_id", "name"} for group in names)  # nothing it grants
    assert [g["name"].casefold() for g in names] == sorted(g["name"].casefold() for g in names)
    narrow = {"Authorization": f"Bearer {token_without(world.system, world.ann_id, TRANSFER)}"}
    await refused(world, narrow, "/api/transfer/groups", TRANSFER)


async def test_manage_connectors_view_billing_view_audit_and_view_reports(world: World) -> None:
    now = datetime.now(UTC).isoformat()
    routes = {
        MANAGE_CONNECTORS: [("/api/admin/connectors", {})],
        VIEW_BILLING: [("/api/billing/account", {}), ("/api/billing/plans", {})],
        VIEW_AUDIT: [
            (f"/api/audit/conversations/{world.closed_id}/timeline", {}),
            (f"/api/audit/conversations/{world.closed_id}/state", {"at": now}),
            ("/api/audit/settings", {"at": now}),
            ("/api/audit/admin-events", {}),
        ],
        VIEW_REPORTS: [
            ("/api/reports/summary", {}),
            ("/api/reports/summary.csv", {"group_by": "agent"}),
        ],
    }
    answers: dict[str, httpx.Response] = {}
    for permission, paths in routes.items():
        with_it = await granted(world, permission)
        for path, params in paths:
            await refused(world, world.plain, path, permission, **params)
            answers[path] = await allowed(world, with_it, path, **params)
    assert answers["/api/admin/connectors"].json() == []
    assert answers["/api/billing/account"].json()["plan"]["plan_id"]
    timeline = answers[f"/api/audit/conversations/{world.closed_id}/timeline"].json()
    assert timeline["chain_ok"] is True and "closed secret" in str(timeline["events"])
    assert all(e["kind"] for e in answers["/api/audit/admin-events"].json()["events"])
    assert answers["/api/reports/summary.csv"].headers["content-type"].startswith("text/csv")
