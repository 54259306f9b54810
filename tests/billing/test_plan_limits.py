"""Plan limits beyond conversations: agent seats (admin service), connectors (connectors service).

Each limit bites in the single writer of the decision it limits, against the plan that
writer folded from the log; tool-mode tenants have no limits at all.
"""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.service import ConnectorsService
from relaydesk.settings import Settings
from tests.admin.helpers import eventually, owner_session
from tests.system import RunningSystem, running_system

PLANS = {
    "default": "duo",
    "plans": [
        {
            "plan_id": "duo",
            "name": "Duo",
            "price_cents": 1000,
            "limits": {"agent_seats": 2, "conversations_per_month": 50, "connectors": 1},
        },
        {
            "plan_id": "wide",
            "name": "Wide",
            "price_cents": 5000,
            "limits": {"agent_seats": 3, "conversations_per_month": None, "connectors": None},
        },
    ],
}
TELEGRAM = {
    "platform": "telegram",
    "public_config": {"mode": "webhook"},
    "secrets": {"bot_token": "1:abc"},
}


def telegram_bot(bot: int) -> dict[str, Any]:
    """Another bot: one bot is one connector (a second connector of the same bot is refused)."""
    return {**TELEGRAM, "secrets": {"bot_token": f"{bot}:abc"}}


@pytest.fixture
async def system(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[RunningSystem, ConnectorsService]]:
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps(PLANS))
    limited = settings.model_copy(update={"plans_file": str(plans), "connectors_port": 0})
    async with running_system(limited, with_history=False) as running:
        connectors = ConnectorsService(limited)
        await connectors.start()
        try:
            yield running, connectors
        finally:
            await connectors.stop()


async def add_agent(
    http: httpx.AsyncClient, owner: dict[str, str], tenant: str, name: str
) -> httpx.Response:
    return await http.post(
        "/api/admin/agents",
        headers=owner,
        json={"email": f"{name}@{tenant}.test", "name": name, "password": f"{name}-password-1"},
    )


def refused_for(response: httpx.Response, limit: str) -> bool:
    body = response.json()
    return (
        response.status_code == 402
        and body["error"]["code"] == "plan_limit"
        and limit in body["error"]["message"]
    )


async def limits_of(http: httpx.AsyncClient, owner: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = await http.get("/api/billing/account", headers=owner)
    assert response.status_code == 200, response.text
    return {row["limit"]: row for row in response.json()["limits"]}


async def test_seats_and_connectors_are_refused_beyond_the_plan_and_freed_or_raised(
    system: tuple[RunningSystem, ConnectorsService],
) -> None:
    running, _ = system
    async with httpx.AsyncClient(base_url=running.gateway.base_url) as http:
        owner = await owner_session(
            running, http, "seaty", mode="saas"
        )  # the owner takes seat 1 of 2
        assert (await add_agent(http, owner, "seaty", "ann")).status_code == 201
        over = await add_agent(http, owner, "seaty", "bob")
        assert (
            refused_for(over, "agent_seats")
            and "Duo" in over.json()["error"]["message"]
            and " 2 " in over.json()["error"]["message"]
        )
        agents = (await http.get("/api/admin/agents", headers=owner)).json()
        assert sorted(a["name"] for a in agents) == ["Boss", "ann"]  # nothing was created

        # The billing page shows limit vs used and the same reason.
        limits = await eventually(
            lambda: _seats_full(http, owner), what="the seat limit on the billing page"
        )
        assert limits["agent_seats"]["used"] == 2 and limits["agent_seats"]["value"] == 2
        assert "agent_seats" in limits["agent_seats"]["reason"]
        assert limits["connectors"] == {
            "limit": "connectors",
            "value": 1,
            "used": 0,
            "reached": False,
            "reason": None,
        }

        # A removed agent frees their seat.
        ann = next(a["agent_id"] for a in agents if a["name"] == "ann")
        assert (await http.delete(f"/api/admin/agents/{ann}", headers=owner)).status_code in (
            200,
            204,
        )
        assert (await add_agent(http, owner, "seaty", "bob")).status_code == 201

        # One connector fits; reconfiguring it is not another one; a second is refused.
        assert (
            await http.put("/api/admin/connectors/tg-one", headers=owner, json=TELEGRAM)
        ).status_code == 200
        assert (
            await http.put(
                "/api/admin/connectors/tg-one",
                headers=owner,
                json={**TELEGRAM, "public_config": {"mode": "polling"}},
            )
        ).status_code == 200
        second = await http.put("/api/admin/connectors/tg-two", headers=owner, json=telegram_bot(2))
        assert refused_for(second, "connectors"), second.text
        assert [
            c["connector_id"]
            for c in (await http.get("/api/admin/connectors", headers=owner)).json()
        ] == ["tg-one"]

        # A bigger plan lifts both limits once its event reaches each writer's fold.
        assert (
            await http.post("/api/billing/plan", headers=owner, json={"plan": "wide"})
        ).status_code == 200
        raised = await eventually(
            lambda: _accepted(add_agent(http, owner, "seaty", "cat")),
            what="the seat limit to be raised",
        )
        assert raised.status_code == 201
        assert refused_for(
            await add_agent(http, owner, "seaty", "dan"), "agent_seats"
        )  # Wide has 3
        connector = await eventually(
            lambda: _accepted(
                http.put("/api/admin/connectors/tg-two", headers=owner, json=telegram_bot(2))
            ),
            what="unlimited connectors",
        )
        assert connector.status_code == 200


async def test_tool_mode_tenants_have_no_seat_or_connector_limit(
    system: tuple[RunningSystem, ConnectorsService],
) -> None:
    running, _ = system
    async with httpx.AsyncClient(base_url=running.gateway.base_url) as http:
        owner = await owner_session(running, http, "toolish")
        for name in ("ann", "bob", "cat"):  # beyond every plan's default of 2 seats
            assert (await add_agent(http, owner, "toolish", name)).status_code == 201
        for bot, connector_id in ((3, "tg-a"), (4, "tg-b")):
            assert (
                await http.put(
                    f"/api/admin/connectors/{connector_id}", headers=owner, json=telegram_bot(bot)
                )
            ).status_code == 200


async def _seats_full(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> dict[str, dict[str, Any]] | None:
    limits = await limits_of(http, owner)
    return limits if limits["agent_seats"]["reached"] else None


async def _accepted(request: Any) -> httpx.Response | None:
    response = await request
    return response if response.status_code < 300 else None
