"""Every admin route checked both ways, permissions granted by groups, tenant isolation by id.

One system is shared by the module (tests/conftest.py's ``module_system``); each test
has tenants of its own.
"""

import httpx
import pytest

from contracts import Actor, Envelope
from gateway.auth.permissions import EDIT_SHARED_CANNED, MANAGE_AGENTS, MANAGE_SETTINGS
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from tests.admin.helpers import new_agent, owner_session
from tests.system import RunningSystem

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROUTES = [
    (MANAGE_AGENTS, "GET", "/api/admin/agents", None),
    (
        MANAGE_AGENTS,
        "POST",
        "/api/admin/agents",
        {"email": "new@acme.test", "name": "New", "password": "a-strong-pass-1"},
    ),
    (MANAGE_AGENTS, "GET", "/api/admin/groups", None),
    (MANAGE_AGENTS, "POST", "/api/admin/groups", {"name": "Night shift", "departments": ["sales"]}),
    (MANAGE_SETTINGS, "GET", "/api/admin/settings", None),
    (MANAGE_SETTINGS, "PATCH", "/api/admin/settings", {"greeting": "Howdy"}),
    (MANAGE_SETTINGS, "GET", "/api/admin/webhooks", None),
    (
        MANAGE_SETTINGS,
        "POST",
        "/api/admin/webhooks",
        {"url": "https://hooks.example.com/r", "event_types": ["webhook.unsubscribed"]},
    ),
    (
        EDIT_SHARED_CANNED,
        "POST",
        "/api/canned",
        {"shortcut": "hello", "text": "Hello!", "scope": "tenant"},
    ),
]


async def test_each_permission_refused_without_it_and_allowed_when_a_group_grants_it(
    module_system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "grants")
        _, plain = await new_agent(http, owner, "grants", "plain")
        for permission in (MANAGE_AGENTS, MANAGE_SETTINGS, EDIT_SHARED_CANNED):
            group = await http.post(
                "/api/admin/groups",
                headers=owner,
                json={"name": permission, "permissions": [permission]},
            )
            _, granted = await new_agent(
                http,
                owner,
                "grants",
                permission.replace("_", "-"),
                groups=[group.json()["group_id"]],
            )
            for needed, method, path, body in ROUTES:
                if needed != permission:
                    continue
                if body and "email" in body:
                    body = {**body, "email": f"{permission}@grants.test"}
                refused = await http.request(method, path, headers=plain, json=body)
                assert (
                    refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
                ), (path, refused.text)
                assert permission in refused.json()["error"]["message"]
                allowed = await http.request(method, path, headers=granted, json=body)
                assert allowed.status_code in (200, 201), (permission, path, allowed.text)


async def test_personal_canned_responses_belong_to_their_owner(
    module_system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "canned")
        _, ann = await new_agent(http, owner, "canned", "ann")
        _, bob = await new_agent(http, owner, "canned", "bob")
        mine = (
            await http.post(
                "/api/canned",
                headers=ann,
                json={"shortcut": "bye", "text": "Bye from Ann", "scope": "personal"},
            )
        ).json()["canned_id"]
        shared = (
            await http.post(
                "/api/canned", headers=owner, json={"shortcut": "hours", "text": "We open at 9"}
            )
        ).json()["canned_id"]
        assert (
            await http.patch(f"/api/canned/{mine}", headers=bob, json={"text": "hijacked"})
        ).status_code == 404
        assert (
            await http.patch(f"/api/canned/{mine}", headers=owner, json={"text": "hijacked"})
        ).status_code == 404
        assert (
            await http.patch(f"/api/canned/{shared}", headers=ann, json={"text": "changed"})
        ).status_code == 403
        assert (
            await http.patch(f"/api/canned/{mine}", headers=ann, json={"text": "See you"})
        ).status_code == 200
        assert (
            await http.patch(f"/api/canned/{shared}", headers=owner, json={"text": "We open at 8"})
        ).status_code == 200
        found = (await http.get("/api/canned", headers=ann, params={"q": "see"})).json()
        assert [(c["shortcut"], c["text"]) for c in found] == [("bye", "See you")]
        assert (await http.get("/api/canned", headers=bob, params={"q": "bye"})).json() == []
        assert (await http.delete(f"/api/canned/{shared}", headers=ann)).status_code == 403
        assert (await http.delete(f"/api/canned/{mine}", headers=ann)).status_code == 200
        assert [c["shortcut"] for c in (await http.get("/api/canned", headers=ann)).json()] == [
            "hours"
        ]


async def test_another_tenants_ids_are_refused_everywhere(
    module_system: RunningSystem, module_bus: Bus
) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        acme, globex = (
            await owner_session(module_system, http, "isoacme"),
            await owner_session(module_system, http, "isoglobex"),
        )
        ann_id, _ = await new_agent(http, acme, "isoacme", "ann")
        group_id = (
            await http.post("/api/admin/groups", headers=acme, json={"name": "Sales"})
        ).json()["group_id"]
        canned_id = (
            await http.post(
                "/api/canned", headers=acme, json={"shortcut": "acme-only", "text": "secret sauce"}
            )
        ).json()["canned_id"]
        hook_id = (
            await http.post(
                "/api/admin/webhooks",
                headers=acme,
                json={"url": "https://hooks.acme.test/x", "event_types": ["webhook.unsubscribed"]},
            )
        ).json()["subscription_id"]
        attempts = [
            ("PATCH", f"/api/admin/agents/{ann_id}", {"role": "admin"}),
            ("DELETE", f"/api/admin/agents/{ann_id}", None),
            ("PATCH", f"/api/admin/groups/{group_id}", {"name": "Mine"}),
            ("DELETE", f"/api/admin/groups/{group_id}", None),
            ("PATCH", f"/api/canned/{canned_id}", {"text": "stolen"}),
            ("DELETE", f"/api/canned/{canned_id}", None),
            ("DELETE", f"/api/admin/webhooks/{hook_id}", None),
            ("GET", f"/api/admin/webhooks/{hook_id}/deliveries", None),
        ]
        for method, path, body in attempts:
            response = await http.request(method, path, headers=globex, json=body)
            assert response.status_code == 404, (path, response.text)
        for path in (
            "/api/admin/agents",
            "/api/admin/groups",
            "/api/admin/webhooks",
            "/api/canned?q=acme",
        ):
            listed = (await http.get(path, headers=globex)).text
            assert (
                ann_id not in listed
                and group_id not in listed
                and canned_id not in listed
                and hook_id not in listed
            ), path
        assert (
            await http.patch("/api/admin/settings", headers=acme, json={"greeting": "Acme says hi"})
        ).status_code == 200
        assert (await http.get("/api/admin/settings", headers=globex)).json()[
            "greeting"
        ] != "Acme says hi"
        still = (await http.get("/api/admin/agents", headers=acme)).json()
        assert {a["agent_id"]: a["role"] for a in still}[ann_id] == "agent"
        assert (await http.get("/api/canned", headers=acme, params={"q": "acme-only"})).json()[0][
            "text"
        ] == "secret sauce"
    # The admin commands themselves: globex naming acme's ids finds nothing.
    rpc = RpcClient(module_bus)
    for type_name, data in [
        ("agent.remove", {"agent_id": ann_id}),
        ("permission_group.delete", {"group_id": group_id}),
        ("canned_response.delete", {"canned_id": canned_id}),
        ("webhook.unsubscribe", {"subscription_id": hook_id}),
    ]:
        command = Envelope(
            type=type_name,
            tenant="isoglobex",
            stream="tenant",
            actor=Actor(kind="admin", id="boss"),
            data=data,
        )
        reply = await rpc.command("admin", command, timeout=10)
        assert not reply.ok and reply.code == "not_found", type_name
