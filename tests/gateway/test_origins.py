"""A visitor's websocket against the tenant's allowed sites, with the admin service up and down."""

import httpx
import pytest
import websockets

from agent_service.admin.service import AdminService
from tests.admin.helpers import owner_session
from tests.gateway.wsclient import Client
from tests.system import RunningSystem

SHOP = "https://shop.acme.test"
EVIL = "https://evil.example"


async def refused(system: RunningSystem, tenant: str, origin: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as answer:
        await websockets.connect(
            f"{system.gateway.ws_url}?token={system.visitor_token(tenant, 'v1')}",
            additional_headers={"Origin": origin},
        )
    assert answer.value.response.status_code == 403


async def accepted(system: RunningSystem, tenant: str, origin: str) -> None:
    client = await Client.connect(
        system.gateway.ws_url, system.visitor_token(tenant, "v1"), origin=origin
    )
    assert client.frames[0]["session"] == {"kind": "customer", "id": "v1", "tenant": tenant}
    await client.close()


async def test_visitor_origin_is_checked_and_stays_checked_while_the_admin_service_is_down(
    system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "acme")
        changed = await http.patch(
            "/api/admin/settings", headers=owner, json={"allowed_origins": [SHOP + "/"]}
        )
        assert changed.status_code == 200, changed.text
    await refused(system, "acme", EVIL)
    await refused(system, "acme", "https://shop.acme.test.evil.example")
    await accepted(system, "acme", SHOP)
    await accepted(system, "globex", EVIL)  # no sites configured: any site
    # The widget's session answers the same, so the widget can say "not on this site" (a
    # browser sees a refused upgrade only as a dropped connection).
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        for origin, status in ((EVIL, 403), (None, 403), (SHOP, 200)):
            headers = {"Origin": origin} if origin else {}
            session = await http.post(
                "/api/visitor/session", json={"tenant": "acme"}, headers=headers
            )
            assert session.status_code == status, (origin, session.text)
        assert session.json()["visitor_token"]

    admin = next(s for s in system.services if isinstance(s, AdminService))
    await admin.stop()
    system.services.remove(admin)
    # What the settings cache expiring does; the next lookup finds no admin service.
    system.gateway.server.config.app.state.deps.tenant_settings.forget("acme")
    await refused(system, "acme", EVIL)  # fail closed: the sites learnt before still apply
    await accepted(system, "acme", SHOP)
    await accepted(system, "initech", EVIL)  # never learnt: let through (documented LIMIT)
