"""The audit listing of administrative changes: who, what, before/after, by time range and kind.

Read from history's archive of the real log; permission ``view_audit``; one tenant's
changes are never shown to another.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from relaydesk.settings import Settings
from tests.admin.helpers import eventually, new_agent, owner_session
from tests.system import RunningSystem, running_system


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings) as running:  # with history: the archive is what is read
        yield running


async def changes(
    http: httpx.AsyncClient, who: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    response = await http.get("/api/audit/admin-events", headers=who, params=params)
    assert response.status_code == 200, response.text
    return response.json()["events"]


async def test_admin_changes_are_listed_with_who_and_before_after_by_range_and_kind(
    system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "acme")
        ann, _ = await new_agent(http, owner, "acme", "ann")
        assert (
            await http.patch(
                f"/api/admin/agents/{ann}",
                headers=owner,
                json={"role": "supervisor", "password": "a-new-password"},
            )
        ).status_code == 200
        assert (
            await http.post(
                "/api/admin/groups",
                headers=owner,
                json={"name": "Sales", "permissions": ["view_reports"]},
            )
        ).status_code == 201
        assert (
            await http.patch(
                "/api/admin/settings", headers=owner, json={"greeting": "Hello from Acme"}
            )
        ).status_code == 200
        joe, joe_auth = await new_agent(http, owner, "acme", "joe")  # a plain agent: no view_audit
        other = await owner_session(system, http, "globex")
        assert (
            await http.patch("/api/admin/settings", headers=other, json={"greeting": "Globex here"})
        ).status_code == 200

        listed = await eventually(
            lambda: _with(http, owner, "agent.created", subject=joe),
            what="the changes in the archive",
        )
        types = [e["type"] for e in listed]
        assert (
            types.count("agent.created") == 3
            and "agent.updated" in types
            and "permission_group.created" in types
            and "tenant.settings_changed" in types
        )
        assert [e["position"] for e in listed] == sorted(
            (e["position"] for e in listed), reverse=True
        )  # newest first
        update = next(e for e in listed if e["type"] == "agent.updated")
        boss = next(
            e
            for e in listed
            if e["type"] == "agent.created" and e["after"]["email"] == "boss@acme.test"
        )
        assert (
            update["subject"] == ann
            and update["actor"]["kind"] in ("agent", "admin")
            and update["actor"]["id"] not in ("", None)
        )
        assert update["before"]["role"] == "agent" and update["after"]["role"] == "supervisor"
        assert (
            update["before"]["password_hash"] == "(hidden)"
            and update["after"]["password_hash"] == "(hidden)"
        )
        assert boss["actor"]["id"] == "cli" and boss["after"]["password_hash"] == "(hidden)"
        settings = next(e for e in listed if e["type"] == "tenant.settings_changed")
        assert (
            settings["after"] == {"greeting": "Hello from Acme"}
            and settings["before"]["greeting"] != "Hello from Acme"
        )
        text = str(listed)
        assert "$argon2" not in text and "globex" not in text.lower() and "Globex here" not in text

        # Only one kind; and a time range cuts on both sides.
        assert {e["type"] for e in await changes(http, owner, kind="settings")} == {
            "tenant.settings_changed"
        }
        since = await changes(http, owner, since=settings["occurred_at"])
        assert {e["type"] for e in since} == {"tenant.settings_changed", "agent.created"} and all(
            e["position"] >= settings["position"] for e in since
        )
        until = await changes(http, owner, until=update["occurred_at"])
        assert all(
            e["position"] <= update["position"] for e in until
        ) and "tenant.settings_changed" not in {e["type"] for e in until}

        # The other tenant sees its own change only; an agent without view_audit sees nothing.
        theirs = await eventually(
            lambda: _with(http, other, "tenant.settings_changed"), what="globex's change"
        )
        assert all(e["subject"] not in (ann, joe) for e in theirs) and "Hello from Acme" not in str(
            theirs
        )
        assert (await http.get("/api/audit/admin-events", headers=joe_auth)).status_code == 403
        assert (
            await http.get("/api/audit/admin-events", headers=owner, params={"kind": "bogus"})
        ).status_code == 400


async def _with(
    http: httpx.AsyncClient, who: dict[str, str], type_name: str, subject: str | None = None
) -> list[dict[str, Any]] | None:
    found = await changes(http, who)
    return (
        found
        if any(
            e["type"] == type_name and (subject is None or e["subject"] == subject) for e in found
        )
        else None
    )
