"""Administration decisions, pure: given events on the log, when a command, then the outcome."""

from typing import Any

from contracts import Envelope
from tests.deciders.harness import admin_desk, command, event


def tenant_created(mode: str = "saas", plan: str = "free") -> Envelope:
    return event(
        "tenant.created", {"tenant_id": "acme", "name": "Acme", "mode": mode, "plan": plan}
    )


def agent_created(agent_id: str, email: str | None = None) -> Envelope:
    data = {"agent_id": agent_id, "email": email or f"{agent_id}@acme.test", "name": agent_id}
    return event("agent.created", data, stream=f"agent:{agent_id}")


def group_created(group_id: str) -> Envelope:
    data = {"group_id": group_id, "name": group_id.title()}
    return event("permission_group.created", data, stream=f"group:{group_id}")


def create_agent(agent_id: str, email: str | None = None, **extra: Any) -> Envelope:
    data = {
        "agent_id": agent_id,
        "email": email or f"{agent_id}@acme.test",
        "name": agent_id.title(),
        "password_hash": "hash",
        **extra,
    }
    return command("agent.create", data)


class TestTenant:
    async def test_a_tenant_is_created_in_its_own_name(self) -> None:
        desk = admin_desk()
        reply = await desk.when(
            command("tenant.create", {"tenant_id": "acme", "name": "Acme", "mode": "saas"})
        )
        assert desk.types == ["tenant.created"]
        assert desk.of("tenant.created") == [
            {"tenant_id": "acme", "name": "Acme", "mode": "saas", "owner_email": None, "plan": None}
        ]
        assert reply.ok and reply.event_ids == (desk.published.events[0].id,)

    async def test_creating_another_tenant_is_forbidden(self) -> None:
        desk = admin_desk()
        reply = await desk.when(command("tenant.create", {"tenant_id": "globex", "name": "G"}))
        assert desk.types == ["command.rejected"] and reply.code == "forbidden"

    async def test_an_existing_tenant_is_not_created_again(self) -> None:
        desk = admin_desk().given(tenant_created())
        reply = await desk.when(command("tenant.create", {"tenant_id": "acme", "name": "Again"}))
        assert desk.types == ["command.rejected"] and reply.code == "already_exists"

    async def test_sign_up_is_refused_outside_saas_mode(self) -> None:
        desk = admin_desk(mode="tool")
        sign_up = {
            "tenant_id": "acme",
            "name": "Acme",
            "owner_email": "o@acme.test",
            "owner_name": "O",
            "password_hash": "h",
            "token_hash": "t",
        }
        reply = await desk.when(command("tenant.sign_up", sign_up))
        assert desk.types == ["command.rejected"] and reply.code == "forbidden"


class TestAgents:
    async def test_an_agent_is_created_with_a_normalised_email(self) -> None:
        desk = admin_desk().given(tenant_created())
        reply = await desk.when(create_agent("ann", email=" Ann@Acme.TEST "))
        assert desk.types == ["agent.created"]
        [created] = desk.published.events
        assert created.stream == "agent:ann" and created.data["email"] == "ann@acme.test"
        assert reply.ok and reply.data == {"ids": ["ann"]}

    async def test_the_next_command_sees_the_agent_just_created(self) -> None:
        desk = admin_desk().given(tenant_created())
        assert (await desk.when(create_agent("ann"))).ok
        again = await desk.when(create_agent("ann2", email="ann@acme.test"))
        assert desk.types == ["command.rejected"] and again.code == "already_exists"
        assert again.message == "email taken"

    async def test_an_agent_in_an_unknown_group_is_refused(self) -> None:
        desk = admin_desk().given(tenant_created())
        reply = await desk.when(create_agent("ann", groups=["nope"]))
        assert desk.types == ["command.rejected"] and reply.code == "not_found"

    async def test_a_plan_with_every_seat_taken_refuses_another_agent(self) -> None:
        desk = admin_desk().given(tenant_created(plan="free"), agent_created("a1"))
        desk.given(agent_created("a2"))  # the free plan has 2 seats
        reply = await desk.when(create_agent("a3"))
        assert desk.types == ["command.rejected"] and reply.code == "plan_limit"

    async def test_a_removed_agent_frees_a_seat(self) -> None:
        desk = admin_desk().given(tenant_created(plan="free"), agent_created("a1"))
        desk.given(agent_created("a2"), event("agent.removed", {"agent_id": "a2"}))
        assert (await desk.when(create_agent("a3"))).ok and desk.types == ["agent.created"]

    async def test_a_role_change_carries_before_after_and_ends_old_tokens(self) -> None:
        desk = admin_desk().given(tenant_created(), agent_created("ann"))
        await desk.when(
            command("agent.update", {"agent_id": "ann", "changes": {"role": "supervisor"}})
        )
        assert desk.of("agent.updated") == [
            {
                "agent_id": "ann",
                "before": {"role": "agent", "token_version": 0},
                "after": {"role": "supervisor", "token_version": 1},
            }
        ]

    async def test_removing_an_unknown_agent_is_not_found(self) -> None:
        desk = admin_desk().given(tenant_created())
        reply = await desk.when(command("agent.remove", {"agent_id": "ghost"}))
        assert desk.types == ["command.rejected"] and reply.code == "not_found"


class TestGroupsAndCanned:
    async def test_a_group_is_created_then_its_id_is_taken(self) -> None:
        desk = admin_desk().given(tenant_created())
        create = {"group_id": "sales", "name": "Sales", "permissions": ["view_audit"]}
        first = await desk.when(command("permission_group.create", create))
        assert desk.types == ["permission_group.created"] and first.data == {"ids": ["sales"]}
        again = await desk.when(command("permission_group.create", create))
        assert desk.types == ["command.rejected"] and again.code == "already_exists"

    async def test_a_canned_response_is_created_for_the_tenant(self) -> None:
        desk = admin_desk().given(tenant_created())
        canned = {"canned_id": "hi", "shortcut": "hi", "text": "Hello!"}
        await desk.when(command("canned_response.create", canned))
        assert desk.types == ["canned_response.created"]
        assert desk.published.events[0].stream == "canned:hi"

    async def test_a_group_canned_response_needs_an_existing_group(self) -> None:
        desk = admin_desk().given(tenant_created(), group_created("sales"))
        canned = {"canned_id": "hi", "shortcut": "hi", "text": "Hi", "scope": "group"}
        missing = await desk.when(
            command("canned_response.create", {**canned, "group_id": "support"})
        )
        assert desk.types == ["command.rejected"] and missing.code == "not_found"
        made = await desk.when(command("canned_response.create", {**canned, "group_id": "sales"}))
        assert made.ok and desk.types == ["canned_response.created"]

    async def test_a_personal_canned_response_needs_its_owner(self) -> None:
        desk = admin_desk().given(tenant_created())
        canned = {"canned_id": "mine", "shortcut": "m", "text": "Mine", "scope": "personal"}
        reply = await desk.when(command("canned_response.create", canned))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"


class TestSettings:
    async def test_a_settings_change_carries_before_and_after(self) -> None:
        desk = admin_desk().given(tenant_created())
        reply = await desk.when(
            command("tenant.update_settings", {"changes": {"timezone": "Europe/Berlin"}})
        )
        assert desk.of("tenant.settings_changed") == [
            {"before": {"timezone": "UTC"}, "after": {"timezone": "Europe/Berlin"}}
        ]
        assert reply.ok

    async def test_an_unknown_time_zone_is_refused(self) -> None:
        desk = admin_desk().given(tenant_created())
        reply = await desk.when(
            command("tenant.update_settings", {"changes": {"timezone": "Mars/Olympus"}})
        )
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert "Mars/Olympus" in (reply.message or "")

    async def test_an_unknown_setting_is_refused(self) -> None:
        desk = admin_desk().given(tenant_created())
        reply = await desk.when(command("tenant.update_settings", {"changes": {"colour": "red"}}))
        assert desk.types == ["command.rejected"]
        assert (reply.message or "").startswith("cannot change colour")

    async def test_settings_of_a_tenant_that_does_not_exist_are_not_found(self) -> None:
        desk = admin_desk()
        reply = await desk.when(command("tenant.update_settings", {"changes": {"timezone": "UTC"}}))
        assert desk.types == ["command.rejected"] and reply.code == "not_found"
        assert desk.published.events[0].stream == "tenant"


class TestWebhooks:
    async def test_a_webhook_is_subscribed_to_known_event_types(self) -> None:
        desk = admin_desk().given(tenant_created())
        subscribe = {
            "subscription_id": "s1",
            "url": "https://hooks.acme.test/in",
            "event_types": ["conversation.closed"],
        }
        reply = await desk.when(command("webhook.subscribe", subscribe))
        assert desk.types == ["webhook.subscribed"] and reply.data == {"ids": ["s1"]}

    async def test_a_plain_http_webhook_off_this_machine_is_refused(self) -> None:
        desk = admin_desk().given(tenant_created())
        subscribe = {
            "subscription_id": "s1",
            "url": "http://hooks.acme.test/in",
            "event_types": ["*"],
        }
        reply = await desk.when(command("webhook.subscribe", subscribe))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"

    async def test_unsubscribing_an_unknown_subscription_is_not_found(self) -> None:
        desk = admin_desk().given(tenant_created())
        reply = await desk.when(command("webhook.unsubscribe", {"subscription_id": "nope"}))
        assert desk.types == ["command.rejected"] and reply.code == "not_found"
