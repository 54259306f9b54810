"""Administration over the real system: CLI, login, permissions both ways, isolation, revocation.

One system is shared by the module (tests/conftest.py's ``module_system``); each test
has tenants of its own.
"""

import httpx
import pytest
from structlog.testing import capture_logs

from tests.admin.helpers import eventually, login, owner_session
from tests.gateway.wsclient import Client
from tests.system import RunningSystem

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_cli_created_owner_logs_in_and_wrong_password_is_refused(
    module_system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        await owner_session(module_system, http, "signin")
        wrong = await login(http, "signin", "boss@signin.test", "nope")
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
        # a tenant no test of the module creates
        other_tenant = await login(http, "nosuchtenant", "boss@signin.test", "correct horse")
        assert other_tenant.status_code == 401


async def test_permissions_are_enforced_both_ways(module_system: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "perms")
        created = await http.post(
            "/api/admin/agents",
            headers=owner,
            json={"email": "ann@perms.test", "name": "Ann", "password": "ann-password"},
        )
        assert created.status_code == 201, created.text
        ann = {
            "Authorization": "Bearer "
            + (await login(http, "perms", "ann@perms.test", "ann-password")).json()["access_token"]
        }
        for method, path, body in [
            ("GET", "/api/admin/agents", None),
            (
                "POST",
                "/api/admin/agents",
                {"email": "x@y.z", "name": "X", "password": "a-strong-pass-1"},
            ),
            ("GET", "/api/admin/settings", None),
            ("PATCH", "/api/admin/settings", {"routing_mode": "round_robin"}),
            ("POST", "/api/canned", {"shortcut": "hi", "text": "Hello!", "scope": "tenant"}),
            ("GET", "/api/admin/groups", None),
        ]:
            refused = await http.request(method, path, headers=ann, json=body)
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["error"]["code"] == "forbidden"
            allowed = await http.request(method, path, headers=owner, json=body)
            assert allowed.status_code in (200, 201), (path, allowed.text)
        personal = await http.post(
            "/api/canned",
            headers=ann,
            json={"shortcut": "mine", "text": "Ann's own", "scope": "personal"},
        )
        assert personal.status_code == 201
        found = await http.get("/api/canned", headers=ann, params={"q": "hi"})
        assert [c["shortcut"] for c in found.json()] == ["hi"]
        assert [
            c["shortcut"]
            for c in (await http.get("/api/canned", headers=owner, params={"q": "mine"})).json()
        ] == []
        settings = (await http.get("/api/admin/settings", headers=owner)).json()
        assert settings["routing_mode"] == "round_robin"


async def test_a_tenant_cannot_touch_another_tenants_data(module_system: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        acme = await owner_session(module_system, http, "isoacme")
        globex = await owner_session(module_system, http, "isoglobex")
        created = await http.post(
            "/api/admin/agents",
            headers=acme,
            json={"email": "ann@isoacme.test", "name": "Ann", "password": "ann-password"},
        )
        ann_id = created.json()["agent_id"]
        assert (await http.delete(f"/api/admin/agents/{ann_id}", headers=globex)).status_code == 404
        assert (
            await http.patch(f"/api/admin/agents/{ann_id}", headers=globex, json={"role": "admin"})
        ).status_code == 404
        names = [a["email"] for a in (await http.get("/api/admin/agents", headers=globex)).json()]
        assert "ann@isoacme.test" not in names
        assert (await login(http, "isoacme", "ann@isoacme.test", "ann-password")).status_code == 200


async def test_repeated_failed_logins_lock_the_account(module_system: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        await owner_session(module_system, http, "lockout")
        with capture_logs() as logs:
            codes = [
                (await login(http, "lockout", "boss@lockout.test", f"guess-{i}")).status_code
                for i in range(6)
            ]
        assert [e["event"] for e in logs if e["event"].startswith("login_")] == [
            "login_failed"
        ] * 5 + ["login_locked"]
        assert not [e for e in logs if "guess-" in repr(e)]  # passwords are never logged
        assert codes[:5] == [401] * 5 and codes[5] == 429
        locked = await login(http, "lockout", "boss@lockout.test", "correct horse")
        assert locked.status_code == 429 and locked.json()["error"]["code"] == "locked"


async def test_removing_an_agent_revokes_their_token_and_closes_their_socket(
    module_system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "removal")
        created = await http.post(
            "/api/admin/agents",
            headers=owner,
            json={"email": "ann@removal.test", "name": "Ann", "password": "ann-password"},
        )
        token = (await login(http, "removal", "ann@removal.test", "ann-password")).json()[
            "access_token"
        ]
        socket = await Client.connect(module_system.gateway.ws_url, token)
        assert (
            await http.delete(f"/api/admin/agents/{created.json()['agent_id']}", headers=owner)
        ).status_code == 200
        assert await socket.wait_closed() == 4401
        refused = await http.get("/api/canned", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401


async def test_a_role_change_revokes_old_tokens_and_a_new_login_carries_the_new_role(
    module_system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "promote")
        created = await http.post(
            "/api/admin/agents",
            headers=owner,
            json={"email": "ann@promote.test", "name": "Ann", "password": "ann-password"},
        )
        old = {
            "Authorization": "Bearer "
            + (await login(http, "promote", "ann@promote.test", "ann-password")).json()[
                "access_token"
            ]
        }
        assert (await http.get("/api/canned", headers=old)).status_code == 200
        changed = await http.patch(
            f"/api/admin/agents/{created.json()['agent_id']}", headers=owner, json={"role": "admin"}
        )
        assert changed.status_code == 200

        # Each gateway learns the change from its log tailer: revoked once the event reaches it.
        async def refused() -> bool:
            return (await http.get("/api/canned", headers=old)).status_code == 401

        await eventually(refused, timeout=5, what="old token refused")
        fresh = await login(http, "promote", "ann@promote.test", "ann-password")
        assert fresh.json()["agent"]["role"] == "admin"
        assert (
            await http.get(
                "/api/admin/agents",
                headers={"Authorization": f"Bearer {fresh.json()['access_token']}"},
            )
        ).status_code == 200


async def test_nobody_grants_more_than_they_have_or_touches_someone_above_them(
    module_system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "ranks")
        group = (
            await http.post(
                "/api/admin/groups",
                headers=owner,
                json={"name": "Team leads", "permissions": ["manage_agents"]},
            )
        ).json()["group_id"]
        await http.post(
            "/api/admin/agents",
            headers=owner,
            json={
                "email": "sue@ranks.test",
                "name": "Sue",
                "role": "supervisor",
                "password": "sue-password",
                "groups": [group],
            },
        )
        sue = {
            "Authorization": "Bearer "
            + (await login(http, "ranks", "sue@ranks.test", "sue-password")).json()["access_token"]
        }
        refused = await http.post(
            "/api/admin/agents",
            headers=sue,
            json={
                "email": "eve@ranks.test",
                "name": "Eve",
                "role": "admin",
                "password": "eve-password",
            },
        )
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        allowed = await http.post(
            "/api/admin/agents",
            headers=sue,
            json={
                "email": "eve@ranks.test",
                "name": "Eve",
                "role": "agent",
                "password": "eve-password",
            },
        )
        assert allowed.status_code == 201
        admins = (
            await http.post(
                "/api/admin/groups",
                headers=owner,
                json={"name": "Admins", "permissions": ["manage_settings"]},
            )
        ).json()["group_id"]
        eve_id = allowed.json()["agent_id"]
        assert (
            await http.patch(f"/api/admin/agents/{eve_id}", headers=sue, json={"groups": [admins]})
        ).status_code == 403
        assert (
            await http.patch(f"/api/admin/agents/{eve_id}", headers=sue, json={"groups": [group]})
        ).status_code == 200
        assert (
            await http.patch(
                f"/api/admin/groups/{group}",
                headers=sue,
                json={"permissions": ["manage_agents", "manage_settings"]},
            )
        ).status_code == 403
        assert (
            await http.post(
                "/api/admin/groups",
                headers=sue,
                json={"name": "Mine", "permissions": ["view_billing"]},
            )
        ).status_code == 403
        assert (
            await http.post(
                "/api/admin/groups",
                headers=owner,
                json={"name": "Typo", "permissions": ["manage_everything"]},
            )
        ).status_code == 400
        boss_id = next(
            a["agent_id"]
            for a in (await http.get("/api/admin/agents", headers=owner)).json()
            if a["role"] == "owner"
        )
        assert (await http.delete(f"/api/admin/agents/{boss_id}", headers=sue)).status_code == 403
        assert (
            await http.patch(
                f"/api/admin/agents/{eve_id}", headers=owner, json={"groups": ["no-such-group"]}
            )
        ).status_code == 404


async def test_bad_settings_and_webhooks_are_refused_with_a_clear_error(
    module_system: RunningSystem,
) -> None:
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "badsettings")
        for change, field in [
            ({"timezone": "Mars/Olympus"}, "timezone"),
            ({"timezone": "America"}, "timezone"),  # a folder of the zone database
            ({"offer_timeout_s": "soon"}, "offer_timeout_s"),
            ({"business_hours": {"mon": [["18:00", "09:00"]]}}, "business_hours"),
            ({"colour": "red"}, "colour"),
            ({"routing_mode": "random"}, "routing_mode"),
        ]:
            refused = await http.patch("/api/admin/settings", headers=owner, json=change)
            assert (
                refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_payload"
            ), refused.text
            assert field in refused.json()["error"]["message"]
            # The form shows it next to the setting; "colour" is none of them.
            assert refused.json()["error"].get("field") == (None if field == "colour" else field)
        good = {
            "timezone": "Europe/Paris",
            "business_hours": {"mon": [["09:00", "17:30"]]},
            "retention_days": 30,
        }
        assert (
            await http.patch("/api/admin/settings", headers=owner, json=good)
        ).status_code == 200
        current = (await http.get("/api/admin/settings", headers=owner)).json()
        assert current["timezone"] == "Europe/Paris" and current["retention_days"] == 30
        for hook in [
            {"url": "http://hooks.example.com/x", "event_types": ["message.sent"]},
            {"url": "https://hooks.example.com/x", "event_types": ["no.such"]},
        ]:
            refused = await http.post("/api/admin/webhooks", headers=owner, json=hook)
            assert (
                refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_payload"
            ), refused.text
        assert (await http.get("/api/admin/webhooks", headers=owner)).json() == []


async def test_ids_text_and_moments_no_service_can_take_are_refused_on_a_connection_that_goes_on(
    module_system: RunningSystem,
) -> None:
    """Each answered 500 (the Envelope or its encoding failed in the route; the store could
    not encode the moment) or 400 "internal" with a class name, before; uvicorn then dropped
    the keep-alive connection. Refused with the documented error now, and the next request
    on the same connection is served."""
    long_id = "a" * 300
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "badinput")
        refusals = [
            ("PATCH", f"/api/admin/agents/{long_id}", {"name": "x"}),
            ("DELETE", f"/api/admin/groups/{long_id}", None),
            ("PATCH", f"/api/canned/{long_id}", {"text": "x"}),
            ("PUT", f"/api/admin/connectors/{long_id}", {"platform": "telegram"}),
            ("POST", f"/api/admin/webhooks/{long_id}/pause", None),
            ("GET", "/api/audit/admin-events?since=0001-01-01T00:00:00%2B14:00", None),
            ("GET", "/api/audit/settings?at=9999-12-31T23:59:59-14:00", None),
        ]
        for method, path, body in refusals:
            refused = await http.request(method, path, headers=owner, json=body)
            assert refused.status_code == 400, (path, refused.text)
            assert refused.json()["error"]["code"] == "invalid_payload", (path, refused.text)
        # a lone surrogate: valid JSON, no valid text (written out: httpx would not encode it)
        lone = await http.patch(
            "/api/admin/settings",
            headers={**owner, "Content-Type": "application/json"},
            content=b'{"greeting": "\\ud800"}',
        )
        assert lone.status_code == 400 and lone.json()["error"] == {
            "code": "invalid_payload",
            "message": "text must be valid Unicode (no lone surrogates)",
        }
        settings = await http.get("/api/admin/settings", headers=owner)
        assert settings.status_code == 200 and settings.json()["greeting"] != "\ud800"


async def test_the_last_owner_cannot_remove_themselves(module_system: RunningSystem) -> None:
    """The owner's DELETE of their own account was accepted: the tenant had nobody who could
    ever make an owner or an admin again. Now 409 until another owner stands beside them."""
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        owner = await owner_session(module_system, http, "lastowner")
        [me] = (await http.get("/api/admin/agents", headers=owner)).json()
        refused = await http.delete(f"/api/admin/agents/{me['agent_id']}", headers=owner)
        assert refused.status_code == 409, refused.text
        assert refused.json() == {
            "error": {
                "code": "conflict",
                "message": "boss@lastowner.test is the tenant's last owner: "
                "make another agent owner first",
            }
        }
        assert (await login(http, "lastowner", "boss@lastowner.test", "correct horse")).is_success
        co = await http.post(
            "/api/admin/agents",
            headers=owner,
            json={
                "email": "co@lastowner.test",
                "name": "Co",
                "password": "co-password-1",
                "role": "owner",
            },
        )
        assert co.status_code == 201, co.text
        gone = await http.delete(f"/api/admin/agents/{me['agent_id']}", headers=owner)
        assert gone.status_code == 200, gone.text
        assert (await login(http, "lastowner", "co@lastowner.test", "co-password-1")).is_success
