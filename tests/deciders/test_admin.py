"""Administration decisions, pure: given events on the log, when a command, then the outcome."""

from typing import Any

from contracts import Envelope
from contracts.envelope import Actor
from tests.deciders.harness import OPERATOR, admin_desk, agent, command, event


def tenant_created(mode: str = "saas", plan: str = "free") -> Envelope:
    return event(
        "tenant.created", {"tenant_id": "acme", "name": "Acme", "mode": mode, "plan": plan}
    )


def agent_created(agent_id: str, email: str | None = None) -> Envelope:
    data = {"agent_id": agent_id, "email": email or f"{agent_id}@acme.test", "name": agent_id}
    return event("agent.created", data, stream=f"agent:{agent_id}")


def owner_created(agent_id: str) -> Envelope:
    data = {"agent_id": agent_id, "email": f"{agent_id}@acme.test", "name": agent_id}
    return event("agent.created", {**data, "role": "owner"}, stream=f"agent:{agent_id}")


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

    async def test_a_sign_up_with_a_blank_name_is_refused(self) -> None:
        sign_up = {
            "tenant_id": "acme",
            "name": "   ",
            "owner_email": "o@acme.test",
            "owner_name": "O",
            "password_hash": "h",
            "token_hash": "t",
        }
        for blank in (sign_up, {**sign_up, "name": "Acme", "owner_name": " "}):
            desk = admin_desk(mode="saas")
            reply = await desk.when(command("tenant.sign_up", blank))
            assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"

    async def test_a_plan_the_catalogue_does_not_have_is_refused(self) -> None:
        # billing read "gold" as the default plan: the operator was told it was created
        desk = admin_desk()
        data = {"tenant_id": "acme", "name": "Acme", "mode": "saas", "plan": "gold"}
        reply = await desk.when(command("tenant.create", data))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message == "plan: no plan 'gold' (the plans are business, free, team)"

    async def test_a_plan_for_a_tool_mode_tenant_is_refused(self) -> None:
        desk = admin_desk()
        data = {"tenant_id": "acme", "name": "Acme", "mode": "tool", "plan": "team"}
        reply = await desk.when(command("tenant.create", data))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message == "plan: only a SaaS tenant has a plan"

    async def test_a_plan_of_the_catalogue_is_taken(self) -> None:
        desk = admin_desk()
        data = {"tenant_id": "acme", "name": "Acme", "mode": "saas", "plan": "team"}
        assert (await desk.when(command("tenant.create", data))).ok
        assert [e["plan"] for e in desk.of("tenant.created")] == ["team"]

    async def test_a_blank_name_is_refused(self) -> None:
        desk = admin_desk()
        reply = await desk.when(command("tenant.create", {"tenant_id": "acme", "name": "  "}))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"


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

    async def test_an_address_that_is_not_an_e_mail_is_refused(self) -> None:
        # it was stored, and nobody could ever sign in with it
        desk = admin_desk().given(tenant_created())
        for email in ("notanemail", "ann@", "@acme.test", "ann@acme@test"):
            reply = await desk.when(create_agent("ann", email=email))
            assert reply.code == "invalid_payload", email
            assert reply.message == f"email: {email!r} is not an e-mail address"
            assert desk.types == ["command.rejected"]

    async def test_a_blank_name_is_refused_on_creation_and_on_change(self) -> None:
        desk = admin_desk().given(tenant_created(), agent_created("bob"))
        created = await desk.when(create_agent("ann", name=" "))
        assert desk.types == ["command.rejected"]
        renamed = await desk.when(
            command("agent.update", {"agent_id": "bob", "changes": {"name": ""}})
        )
        assert desk.types == ["command.rejected"]
        assert (created.code, renamed.code) == ("invalid_payload", "invalid_payload")
        assert created.message == renamed.message == "name: a name cannot be empty"

    async def test_the_last_owner_is_not_removed_even_by_themselves(self) -> None:
        # the tenant was left with nobody who could ever grant owner or admin again
        desk = admin_desk().given(tenant_created(), owner_created("boss"))
        for actor in (agent("boss"), OPERATOR):
            reply = await desk.when(command("agent.remove", {"agent_id": "boss"}, actor=actor))
            assert reply.code == "conflict" and desk.types == ["command.rejected"]
            assert reply.message == (
                "boss@acme.test is the tenant's last owner: make another agent owner first"
            )

    async def test_an_owner_with_another_owner_beside_them_may_go(self) -> None:
        desk = admin_desk().given(tenant_created(), owner_created("boss"), owner_created("co"))
        reply = await desk.when(command("agent.remove", {"agent_id": "boss"}, actor=agent("co")))
        assert reply.ok and desk.types == ["agent.removed"]
        again = await desk.when(command("agent.remove", {"agent_id": "co"}, actor=agent("co")))
        assert again.code == "conflict"

    async def test_the_last_owner_is_not_demoted(self) -> None:
        # an owner removed, the other demoted by the operator's command: nobody owns it
        desk = admin_desk().given(tenant_created(), owner_created("boss"))
        changes = {"agent_id": "boss", "changes": {"role": "admin"}}
        reply = await desk.when(command("agent.update", changes))
        assert reply.code == "conflict" and desk.types == ["command.rejected"]

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

    async def test_a_group_name_is_taken_too_whatever_its_case(self) -> None:
        """Agents pick groups by name (a transfer's target): two "Escalation"s were allowed."""
        desk = admin_desk().given(tenant_created(), group_created("sales"))
        twin = {"group_id": "sales2", "name": "SALES"}
        refused = await desk.when(command("permission_group.create", twin))
        assert refused.code == "already_exists" and "Sales" in (refused.message or "")
        made = await desk.when(command("permission_group.create", {**twin, "name": "Support"}))
        assert made.ok
        renamed = {"group_id": "sales2", "changes": {"name": "sales"}}
        assert (await desk.when(command("permission_group.update", renamed))).code == (
            "already_exists"
        )
        itself = {"group_id": "sales", "changes": {"name": "SALES"}}  # its own name, recased
        assert (await desk.when(command("permission_group.update", itself))).ok

    async def test_a_canned_response_is_created_for_the_tenant(self) -> None:
        desk = admin_desk().given(tenant_created())
        canned = {"canned_id": "hi", "shortcut": "hi", "text": "Hello!"}
        await desk.when(command("canned_response.create", canned))
        assert desk.types == ["canned_response.created"]
        assert desk.published.events[0].stream == "canned:hi"

    async def test_a_shortcut_picks_one_canned_response_where_it_is_offered(self) -> None:
        """Two "hello"s (or "hello" and "HELLO") on one shelf were both taken."""
        desk = admin_desk().given(tenant_created(), group_created("sales"))
        hello = {"canned_id": "h1", "shortcut": "hello", "text": "Hello!"}
        assert (await desk.when(command("canned_response.create", hello))).ok
        twin = {**hello, "canned_id": "h2", "shortcut": "HELLO"}
        refused = await desk.when(command("canned_response.create", twin))
        assert refused.code == "already_exists" and "HELLO" in (refused.message or "")
        in_a_group = {**twin, "scope": "group", "group_id": "sales"}  # another shelf
        assert (await desk.when(command("canned_response.create", in_a_group))).ok
        other = {"canned_id": "h3", "shortcut": "bye", "text": "Bye!"}
        assert (await desk.when(command("canned_response.create", other))).ok
        renamed = {"canned_id": "h3", "changes": {"shortcut": "Hello"}}
        assert (await desk.when(command("canned_response.update", renamed))).code == (
            "already_exists"
        )

    async def test_a_canned_response_says_something(self) -> None:
        desk = admin_desk().given(tenant_created())
        blank = {"canned_id": "b", "shortcut": "b", "text": "   "}
        refused = await desk.when(command("canned_response.create", blank))
        assert refused.code == "invalid_payload" and "text" in (refused.message or "")
        assert (await desk.when(command("canned_response.create", {**blank, "text": "Hi"}))).ok
        emptied = {"canned_id": "b", "changes": {"text": ""}}
        assert (await desk.when(command("canned_response.update", emptied))).code == (
            "invalid_payload"
        )

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

    async def test_true_or_false_is_not_a_number(self) -> None:
        # "max_chats_default": true was saved as a limit of 1 chat
        desk = admin_desk().given(tenant_created())
        for key in ("max_chats_default", "offer_timeout_s", "retention_days"):
            reply = await desk.when(command("tenant.update_settings", {"changes": {key: True}}))
            assert reply.code == "invalid_payload" and desk.types == ["command.rejected"]
            assert reply.message == f"{key}: Input should be a number, not true or false"

    async def test_a_site_with_a_port_out_of_range_is_refused(self) -> None:
        desk = admin_desk().given(tenant_created())
        changes = {"allowed_origins": ["https://shop.example:99999"]}
        reply = await desk.when(command("tenant.update_settings", {"changes": changes}))
        assert reply.code == "invalid_payload" and desk.types == ["command.rejected"]
        ok = {"allowed_origins": ["https://shop.example:8443"], "max_chats_default": "7"}
        assert (await desk.when(command("tenant.update_settings", {"changes": ok}))).ok
        assert desk.of("tenant.settings_changed")[0]["after"]["max_chats_default"] == 7

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

    async def test_an_empty_change_is_refused_and_nothing_is_recorded(self) -> None:
        # PATCH /api/admin/settings with {} put a tenant.settings_changed with no change on the log
        desk = admin_desk().given(tenant_created())
        reply = await desk.when(command("tenant.update_settings", {"changes": {}}))
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message == "nothing to change"


class TestEmptyEdits:
    async def test_an_empty_change_of_an_agent_group_or_canned_response_is_refused(
        self,
    ) -> None:
        # PATCH /api/canned/{id} with {} recorded canned_response.updated with no change
        desk = admin_desk().given(tenant_created(), agent_created("ann"), group_created("sales"))
        canned = {"canned_id": "hi", "shortcut": "hi", "text": "Hello!"}
        assert (await desk.when(command("canned_response.create", canned))).ok
        for type_name, data in (
            ("agent.update", {"agent_id": "ann"}),
            ("permission_group.update", {"group_id": "sales"}),
            ("canned_response.update", {"canned_id": "hi"}),
        ):
            reply = await desk.when(command(type_name, {**data, "changes": {}}))
            assert desk.types == ["command.rejected"], type_name
            assert (reply.code, reply.message) == ("invalid_payload", "nothing to change")


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


def subscribed(subscription_id: str = "s1") -> Envelope:
    data = {
        "subscription_id": subscription_id,
        "url": "https://h.acme.test/in",
        "event_types": ["*"],
    }
    return event("webhook.subscribed", data, stream=f"subscription:{subscription_id}")


def connector_configured(connector_id: str = "tg1") -> Envelope:
    data = {"connector_id": connector_id, "platform": "telegram", "sealed_config": "sealed"}
    return event("connector.configured", data, stream=f"connector:{connector_id}")


def imported_pause(type_name: str, key: str, value: str) -> Envelope:
    """What ``relaydesk import`` publishes just before the creation it pauses."""
    data = {key: value, "reason": "imported"}
    return event(type_name, data, actor=Actor(kind="system", id="import"), stream="import:x")


class TestPauses:
    """Webhook subscriptions and connectors are paused and resumed by the admin service."""

    async def test_a_subscription_is_paused_then_resumed_and_stops_then_delivers(self) -> None:
        desk = admin_desk().given(tenant_created(), subscribed())
        state = desk.decider.state
        assert ("acme", "s1") in state.webhook_subscriptions()
        reply = await desk.when(command("webhook.pause", {"subscription_id": "s1"}))
        assert reply.ok and desk.types == ["webhook.paused"]
        [pause] = desk.published.events
        assert pause.stream == "subscription:s1" and pause.data["reason"] == "admin"
        assert ("acme", "s1") not in state.webhook_subscriptions()  # its worker stops
        again = await desk.when(command("webhook.pause", {"subscription_id": "s1"}))
        assert again.code == "conflict"
        reply = await desk.when(command("webhook.resume", {"subscription_id": "s1"}))
        assert reply.ok and desk.of("webhook.resumed") == [
            {"subscription_id": "s1", "pauses": [pause.id]}
        ]
        assert ("acme", "s1") in state.webhook_subscriptions()
        again = await desk.when(command("webhook.resume", {"subscription_id": "s1"}))
        assert again.code == "conflict"

    async def test_an_imported_subscription_is_paused_from_its_creation(self) -> None:
        pause = imported_pause("webhook.paused", "subscription_id", "s1")
        desk = admin_desk().given(tenant_created(), pause, subscribed())
        assert desk.decider.state.webhook_subscriptions() == {}  # no worker ever starts
        reply = await desk.when(command("webhook.resume", {"subscription_id": "s1"}))
        assert reply.ok and desk.of("webhook.resumed")[0]["pauses"] == [pause.id]
        assert ("acme", "s1") in desk.decider.state.webhook_subscriptions()

    async def test_a_resume_carried_over_from_the_source_does_not_end_the_import_pause(
        self,
    ) -> None:
        source_pause = event("webhook.paused", {"subscription_id": "s1"})
        source_resume = event(
            "webhook.resumed", {"subscription_id": "s1", "pauses": [source_pause.id]}
        )
        desk = admin_desk().given(
            tenant_created(),
            imported_pause("webhook.paused", "subscription_id", "s1"),
            subscribed(),
            source_pause,
            source_resume,
        )
        assert desk.decider.state.webhook_subscriptions() == {}

    async def test_a_connector_is_paused_and_resumed(self) -> None:
        desk = admin_desk().given(tenant_created(), connector_configured())
        reply = await desk.when(command("connector.pause", {"connector_id": "tg1"}))
        assert reply.ok and desk.types == ["connector.paused"]
        assert desk.published.events[0].stream == "connector:tg1"
        reply = await desk.when(command("connector.resume", {"connector_id": "tg1"}))
        assert reply.ok and desk.types == ["connector.resumed"]
        again = await desk.when(command("connector.resume", {"connector_id": "tg1"}))
        assert again.code == "conflict"

    async def test_an_imported_connector_waits_for_a_resume(self) -> None:
        pause = imported_pause("connector.paused", "connector_id", "tg1")
        desk = admin_desk().given(tenant_created(), pause, connector_configured())
        paused = await desk.when(command("connector.pause", {"connector_id": "tg1"}))
        assert paused.code == "conflict"  # paused already: by the import
        reply = await desk.when(command("connector.resume", {"connector_id": "tg1"}))
        assert reply.ok and desk.of("connector.resumed")[0]["pauses"] == [pause.id]

    async def test_unknown_or_removed_ones_are_not_found(self) -> None:
        removed = event("connector.removed", {"connector_id": "tg1"}, stream="connector:tg1")
        desk = admin_desk().given(tenant_created(), connector_configured(), removed)
        for type_name, data in (
            ("webhook.pause", {"subscription_id": "nope"}),
            ("webhook.resume", {"subscription_id": "nope"}),
            ("connector.pause", {"connector_id": "tg1"}),
            ("connector.resume", {"connector_id": "tg1"}),
        ):
            reply = await desk.when(command(type_name, data))
            assert reply.code == "not_found", type_name

    async def test_pausing_needs_the_permission_of_the_route(self) -> None:
        desk = admin_desk().given(
            tenant_created(),
            agent_created("ann"),  # a plain agent: neither manage_settings nor manage_connectors
            group_created("ops"),
            subscribed(),
            connector_configured(),
        )
        for type_name, data, permission in (
            ("webhook.pause", {"subscription_id": "s1"}, "manage_settings"),
            ("connector.pause", {"connector_id": "tg1"}, "manage_connectors"),
        ):
            reply = await desk.when(command(type_name, data, actor=agent("ann")))
            assert reply.code == "forbidden" and permission in (reply.message or ""), type_name
        granted = event(
            "permission_group.updated",
            {"group_id": "ops", "before": {}, "after": {"permissions": ["manage_connectors"]}},
        )
        joined = event(
            "agent.updated", {"agent_id": "ann", "before": {}, "after": {"groups": ["ops"]}}
        )
        desk.given(granted, joined)
        reply = await desk.when(
            command("connector.pause", {"connector_id": "tg1"}, actor=agent("ann"))
        )
        assert reply.ok and desk.types == ["connector.paused"]
        stranger = await desk.when(
            command("connector.resume", {"connector_id": "tg1"}, actor=agent("mallory"))
        )
        assert stranger.code == "forbidden"
