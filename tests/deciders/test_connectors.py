"""Connector decisions, pure: given events on the log, when a command, then the outcome."""

from typing import Any

from contracts import Envelope
from tests.deciders.harness import BOX, command, connectors_desk, event


def tenant_created(plan: str = "free", tenant: str = "acme") -> Envelope:
    data = {"tenant_id": tenant, "name": tenant, "mode": "saas", "plan": plan}
    return event("tenant.created", data, tenant=tenant)


def configured(connector_id: str, tenant: str = "acme", **secrets: str) -> Envelope:
    data = {
        "connector_id": connector_id,
        "platform": "telegram",
        "public_config": {},
        "sealed_config": BOX.seal(secrets or {"bot_token": "123:abc"}),
    }
    return event("connector.configured", data, stream=f"connector:{connector_id}", tenant=tenant)


def configure(connector_id: str, platform: str = "telegram", **fields: Any) -> Envelope:
    data = {"connector_id": connector_id, "platform": platform, **fields}
    return command("connector.configure", data)


def sealed(**secrets: str) -> str:
    return BOX.seal(secrets)


class TestConfigure:
    async def test_a_connector_is_configured_with_its_secrets_sealed(self) -> None:
        desk = connectors_desk().given(tenant_created())
        reply = await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="123:abc")))
        [made] = desk.published.events
        assert made.type == "connector.configured" and made.stream == "connector:tg1"
        assert BOX.open(made.data["sealed_config"]) == {"bot_token": "123:abc"}
        assert "123:abc" not in made.model_dump_json()
        assert reply.ok and reply.event_ids == (made.id,)

    async def test_missing_secrets_and_public_fields_are_named(self) -> None:
        desk = connectors_desk().given(tenant_created())
        reply = await desk.when(
            configure("fb1", "messenger", sealed_secrets=sealed(app_secret="s"))
        )
        assert desk.types == ["command.rejected"] and reply.code == "invalid_payload"
        assert reply.message == "missing: page_id, page_token, verify_token"

    async def test_secrets_that_cannot_be_opened_are_refused(self) -> None:
        desk = connectors_desk().given(tenant_created())
        reply = await desk.when(configure("tg1", sealed_secrets="not-a-fernet-token"))
        assert desk.types == ["command.rejected"]
        assert reply.message == "sealed_secrets cannot be opened"

    async def test_reconfiguring_keeps_the_secrets_already_set(self) -> None:
        desk = connectors_desk().given(tenant_created(), configured("tg1", bot_token="keep"))
        reply = await desk.when(configure("tg1", public_config={"greeting": "hi"}))
        assert reply.ok
        [made] = desk.published.events
        assert BOX.open(made.data["sealed_config"]) == {"bot_token": "keep"}

    async def test_another_tenants_connector_id_is_taken(self) -> None:
        desk = connectors_desk().given(configured("tg1", tenant="globex"))
        reply = await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="x")))
        assert desk.types == ["command.rejected"] and reply.code == "conflict"


class TestPlanLimit:
    async def test_a_plan_with_every_connector_used_refuses_another(self) -> None:
        desk = connectors_desk().given(tenant_created(plan="free"), configured("tg1"))
        reply = await desk.when(configure("tg2", sealed_secrets=sealed(bot_token="x")))
        assert desk.types == ["command.rejected"] and reply.code == "plan_limit"

    async def test_reconfiguring_a_connector_never_counts_as_another(self) -> None:
        desk = connectors_desk().given(tenant_created(plan="free"), configured("tg1"))
        reply = await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="new")))
        assert reply.ok and desk.types == ["connector.configured"]

    async def test_the_next_command_counts_the_connector_just_configured(self) -> None:
        desk = connectors_desk().given(tenant_created(plan="free"))
        assert (await desk.when(configure("tg1", sealed_secrets=sealed(bot_token="x")))).ok
        reply = await desk.when(configure("tg2", sealed_secrets=sealed(bot_token="y")))
        assert desk.types == ["command.rejected"] and reply.code == "plan_limit"


class TestRemove:
    async def test_a_configured_connector_is_removed(self) -> None:
        desk = connectors_desk().given(tenant_created(), configured("tg1"))
        reply = await desk.when(command("connector.remove", {"connector_id": "tg1"}))
        assert desk.of("connector.removed") == [{"connector_id": "tg1"}] and reply.ok

    async def test_removing_another_tenants_connector_is_not_found(self) -> None:
        desk = connectors_desk().given(configured("tg1", tenant="globex"))
        reply = await desk.when(command("connector.remove", {"connector_id": "tg1"}))
        assert desk.types == ["command.rejected"] and reply.code == "not_found"
